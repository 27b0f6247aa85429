"""Screenshots of the studio page with the shipped model's own results, for the docs.

    python benchmarks/studio_screenshot.py --out docs/figures/studio.png

A server (the API and one worker in this process) on a new data folder: a few prompts are made,
one long job is left running (the queue's live progress), and Debian's chromium (Playwright)
takes the page.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

PROMPTS = ["a red circle moves to the right", "a blue square moves up on a gradient background",
           "a yellow star bounces", "a green ring moves left while a magenta triangle falls"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/figures/studio.png")
    p.add_argument("--model", help="model folder (default: the shipped model)")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    from kinema.server.app import Limits, Settings, create_app
    from kinema.server.worker import Worker
    data = Path(tempfile.mkdtemp(prefix="kinema-shot-"))
    app = create_app(Settings(data=data, model=args.model, limits=Limits(max_steps=1000)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    worker = Worker(data, args.model).load()
    stop = threading.Event()
    threading.Thread(target=worker.serve, args=(stop,), daemon=True).start()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        for i, prompt in enumerate(PROMPTS):
            page.fill("#prompt", prompt)
            page.fill("#seed", str(i + 1))
            page.click("#submit")
            page.wait_for_function(f"() => document.querySelectorAll('.card[data-status=succeeded]').length == {i + 1}",
                                   timeout=120_000)
        page.fill("#prompt", "a cyan circle grows while the camera pans left")
        page.fill("#steps", "400")
        page.click("#submit")
        page.wait_for_function("() => { const p = document.querySelector('#queue progress'); return p && p.value > 0.3; }",
                               timeout=120_000)
        time.sleep(1.0)  # the videos play a moment
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    stop.set()
    server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
