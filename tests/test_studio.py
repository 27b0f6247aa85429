"""The studio page in real Chromium (Debian's, driven by Playwright; `make test` installs it):
submit a prompt and watch its progress reach 100%, see the video play, cancel a running job,
see an upload refused. KINEMA_SCREENSHOTS=DIR keeps screenshots of the page (docs/figures)."""

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from kinema.server.app import Limits, Settings, create_app
from kinema.server.worker import Worker
from test_serve import model, warm  # noqa: F401  (module fixtures: a tiny model, a loaded worker)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")


@pytest.fixture
def studio(tmp_path, model, warm):  # noqa: F811
    data = tmp_path / "data"
    app = create_app(Settings(data=data, model=str(model), limits=Limits(max_steps=5000)))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    worker = Worker(data, model)
    worker.pipe, worker.reader, worker.keep = warm.pipe, warm.reader, warm.keep
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    stop.set()
    thread.join(30)
    server.should_exit = True


@pytest.fixture
def page(studio):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(studio)
        yield page
        browser.close()


def _settings(page, **values):
    for name, value in values.items():
        page.fill(f"#{name}", str(value))


def _shot(page, name):
    folder = os.environ.get("KINEMA_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_submit_watch_progress_and_play(page):
    # every value the queue's progress bar takes, as the page shows it
    page.evaluate("""() => { window.seen = [];
        new MutationObserver(() => document.querySelectorAll('#queue progress').forEach(
            p => window.seen.push(Number(p.value)))).observe(document.body,
            {subtree: true, childList: true, attributes: true, attributeFilter: ['value']});
        const set = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value').set;
        Object.defineProperty(HTMLProgressElement.prototype, 'value', {set(v) { window.seen.push(Number(v));
            set.call(this, v); }, get() { return Number(this.getAttribute('value')); }}); }""")
    page.fill("#prompt", "a red circle moves to the right")
    _settings(page, frames=9, width=32, height=32, steps=30, seed=5)
    page.click("#submit")
    card = page.wait_for_selector(".card[data-status=succeeded] video", timeout=60_000)
    seen = page.evaluate("window.seen")
    assert len(set(seen)) >= 10 and max(seen) >= 0.99 and seen == sorted(seen)  # step by step, up to 100%
    lags = sorted(page.evaluate("window.kinemaLags"))
    assert len(lags) >= 30 and lags[int(0.95 * len(lags))] < 0.5  # a step reaches the page within 0.5 s
    page.wait_for_function("() => { const v = document.querySelector('.card video'); "
                           "return v && v.readyState >= 2 && v.currentTime > 0; }", timeout=20_000)
    duration = card.evaluate("v => v.duration")
    assert abs(duration - 9 / 8) < 0.15  # 9 frames at the model's 8 fps
    assert "seed 5" in page.inner_text(".card .meta")
    assert page.wait_for_selector(".card img[src^=blob]", timeout=10_000)  # the contact sheet
    _shot(page, "studio.png")
    page.click(".card .again")  # make again: the same request and seed
    page.wait_for_function("() => document.querySelectorAll('.card[data-status=succeeded]').length == 2",
                           timeout=60_000)
    assert "same seed" in page.inner_text("#message")


def test_cancel_a_running_job(page):
    page.fill("#prompt", "a blue square moves up")
    _settings(page, frames=17, width=64, height=64, steps=1000)
    page.click("#submit")
    page.wait_for_function("() => { const p = document.querySelector('#queue progress'); return p && p.value > 0; }",
                           timeout=60_000)
    _shot(page, "studio_queue.png")
    page.click("#queue .cancel")
    page.wait_for_selector(".card[data-status=cancelled]", timeout=10_000)
    assert "cancelled" in page.inner_text("#message")
    assert page.query_selector("#queue li") is None


def test_a_refused_upload_is_explained(page, tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"this is not a picture")
    page.check("input[name=mode][value=image]")
    page.set_input_files("#image", str(bad))
    page.fill("#prompt", "a photo comes alive")
    page.click("#submit")
    page.wait_for_function("() => document.querySelector('#message').textContent.includes('refused')",
                           timeout=20_000)
    assert "photo.png" in page.inner_text("#message")
    _shot(page, "studio_error.png")
    assert page.query_selector("#queue li") is None
