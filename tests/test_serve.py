"""kinema serve: the job API (every endpoint), durable jobs (a dead worker's jobs run again, the
same seed giving the same video; kill -9 of a real server), cancellation within a step, batching,
limits, keys, path-traversal attempts, and the metrics."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kinema.cli import main
from kinema.config import preset
from kinema.server import check_bind
from kinema.server.app import Limits, Settings, create_app
from kinema.server.monitor import compare_canary, prompt_attributes
from kinema.server.store import Store
from kinema.server.worker import Worker, error_code
from kinema.errors import InputError
from kinema.train import train
from kinema.video import Video

SMALL = {"frames": 5, "height": 16, "width": 16, "steps": 2}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    runs = tmp_path_factory.mktemp("serve-model")
    train("autoencoder", preset("autoencoder", "tiny"), runs / "ae", max_steps=2, progress=False)
    cfg = preset("transformer", "tiny").override(["lr=0.02", "warmup_steps=1"])
    train("transformer", cfg, runs / "t", max_steps=3, autoencoder=runs / "ae", progress=False)
    return runs / "t"


@pytest.fixture(scope="module")
def warm(model):
    """One loaded worker, reused (its store is swapped per server)."""
    return Worker(model.parent / "unused", model).load()


class Server:
    """An app on a fresh data folder, and its worker in a thread when started."""

    def __init__(self, data, model, warm, keys=(), limits=None, adapters=None):
        self.data, self.model = data, model
        self.app = create_app(Settings(data=data, model=str(model), keys=keys, limits=limits or Limits(),
                                       adapters=adapters))
        self.client = TestClient(self.app)
        self.worker = Worker(data, model)
        self.worker.pipe, self.worker.reader, self.worker.keep = warm.pipe, warm.reader, warm.keep
        self.stop, self.thread = threading.Event(), None

    def start(self):
        self.stop.clear()
        self.thread = threading.Thread(target=self.worker.serve, args=(self.stop,), daemon=True)
        self.thread.start()
        return self

    def halt(self):
        self.stop.set()
        if self.thread:
            self.thread.join(30)

    def post(self, headers=None, **body):
        return self.client.post("/v1/videos", json=body, headers=headers or {})

    def wait(self, job_id, until=("succeeded", "failed", "cancelled"), timeout=120, headers=None):
        t0 = time.time()
        while time.time() - t0 < timeout:
            job = self.client.get(f"/v1/videos/{job_id}", headers=headers or {}).json()
            if job["status"] in until:
                return job
            time.sleep(0.05)
        raise AssertionError(f"{job_id} stayed {job['status']}")

    def video(self, job_id, headers=None) -> Video:
        r = self.client.get(f"/v1/videos/{job_id}/content", params={"variant": "video"}, headers=headers or {})
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        path = self.data / f"{job_id}.mp4"
        path.write_bytes(r.content)
        return Video.read(path)


@pytest.fixture
def server(tmp_path, model, warm):
    s = Server(tmp_path / "data", model, warm, limits=Limits(max_steps=5000))
    yield s
    s.halt()


# ------------------------------------------------------------------ the job resource

def test_a_job_from_request_to_files(server, tmp_path):
    r = server.post(prompt="a red circle moves to the right", **SMALL)
    assert r.status_code == 202
    job = r.json()
    assert job["status"] == "queued" and job["object"] == "video" and job["id"].startswith("video_")
    assert isinstance(job["seed"], int) and job["request"]["prompt"] == "a red circle moves to the right"
    assert job["outputs"] is None and job["error"] is None and job["created_at"] > 0
    server.start()
    done = server.wait(job["id"])
    assert done["status"] == "succeeded" and done["progress"] == 1.0
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    assert set(done["outputs"]) == {"video", "sheet", "thumbnail"}
    marks = done["result"]["provenance"]  # both marks, named by variant (no server paths)
    assert marks["manifest"] == ["video", "sheet", "thumbnail"] and marks["watermark"]["payload"] > 0
    video = server.video(job["id"])
    assert (video.num_frames, video.height, video.width) == (5, 16, 16)
    for variant in ("sheet", "thumbnail"):
        r = server.client.get(done["outputs"][variant])
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    # the same request through the CLI (one job runner): the same video
    out = tmp_path / "cli.mp4"
    assert main(["generate", "a red circle moves to the right", "--model", str(server.model), "--frames", "5",
                 "--height", "16", "--width", "16", "--steps", "2", "--seed", str(job["seed"]), "--out", str(out)]) == 0
    assert np.abs(Video.read(out).frames.astype(float) - video.frames).mean() <= 2.0
    # events: queued, running, one per sampling step (2 steps), succeeded
    with server.client.stream("GET", f"/v1/videos/{job['id']}/events") as s:
        text = "".join(s.iter_text())
    events = [(b.split("\n")[1][7:], json.loads(b.split("\n")[2][6:])) for b in text.strip().split("\n\n")]
    assert [t for t, _ in events] == ["status", "status", "progress", "progress", "status"]
    assert [e["status"] for t, e in events if t == "status"] == ["queued", "running", "succeeded"]
    assert [e["step"] for t, e in events if t == "progress"] == [1, 2]
    assert [e["progress"] for t, e in events if t == "progress"] == [0.5, 0.999]


def test_listing_is_newest_first_and_pages(server):
    ids = [server.post(prompt=f"clip {i}", **SMALL).json()["id"] for i in range(5)]
    page = server.client.get("/v1/videos", params={"limit": 2}).json()
    assert [j["id"] for j in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = server.client.get("/v1/videos", params={"limit": 10, "after": page["last_id"]}).json()
    assert [j["id"] for j in rest["data"]] == ids[::-1][2:] and not rest["has_more"]


def test_cancel_a_queued_and_a_running_job_and_delete_a_finished_one(server):
    queued = server.post(prompt="a blue square", **SMALL).json()
    r = server.client.delete(f"/v1/videos/{queued['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    long = server.post(prompt="a green star", frames=5, height=16, width=16, steps=400).json()
    server.start()
    server.wait(long["id"], until=("running",))
    while server.client.get(f"/v1/videos/{long['id']}").json()["progress"] < 0.01:
        time.sleep(0.02)
    assert server.client.delete(f"/v1/videos/{long['id']}").json()["status"] == "cancelled"
    steps_then = len(Store(server.data).events(long["id"]))
    time.sleep(1.0)  # the worker stops at its next step: at most one more event
    events = Store(server.data).events(long["id"])
    assert len(events) <= steps_then + 1 and events[-1]["data"]["progress"] < 0.5
    assert server.client.get(f"/v1/videos/{long['id']}").json()["status"] == "cancelled"
    assert not (server.data / "outputs" / long["id"]).exists()
    # the worker is free again: a finished job, then deleted with its files
    done = server.wait(server.post(prompt="a ring", **SMALL).json()["id"])
    folder = server.data / "outputs" / done["id"]
    assert (folder / "video.mp4").is_file()
    assert server.client.delete(f"/v1/videos/{done['id']}").json() == {"id": done["id"], "object": "video",
                                                                       "deleted": True}
    assert not folder.exists() and server.client.get(f"/v1/videos/{done['id']}").status_code == 404


def test_waiting_jobs_of_one_shape_run_as_one_batch_each_from_its_seed(server):
    ids = [server.post(prompt=p, seed=s, **SMALL).json()["id"]
           for p, s in (("a red circle", 1), ("a blue star", 2), ("a green ring", 3))]
    other = server.post(prompt="a red circle", seed=1, frames=9, height=16, width=16, steps=2).json()["id"]
    server.start()
    jobs = [server.wait(i) for i in ids + [other]]
    assert [j["result"]["batch"] for j in jobs[:3]] == [3, 3, 3] and jobs[3]["result"]["batch"] == 1
    alone = _made(server, {"prompt": "a blue star", "seed": 2, **SMALL})
    assert _close(server.video(ids[1]), alone)


def test_a_dead_workers_job_runs_again_with_its_seed(server):
    job = server.post(prompt="a yellow star bounces", seed=7, **SMALL).json()
    store = Store(server.data)
    dead = f"{socket.gethostname()}:{2**22 + 12345}:gone"  # a pid no process has
    assert [j["id"] for j in store.claim(dead)] == [job["id"]]
    assert server.client.get(f"/v1/videos/{job['id']}").json()["status"] == "running"
    server.start()  # the worker's recover() finds it and runs it
    done = server.wait(job["id"])
    assert done["status"] == "succeeded"
    alone = _made(server, {"prompt": "a yellow star bounces", "seed": 7, **SMALL})
    assert _close(server.video(job["id"]), alone)
    statuses = [e["data"].get("status") for e in store.events(job["id"]) if e["type"] == "status"]
    assert statuses == ["queued", "running", "queued", "running", "succeeded"]


def test_failed_jobs_say_why(server):
    r = server.post(prompt="x", frames=6, height=16, width=16)  # 6 is not 4k + 1: refused at once
    assert r.status_code == 400 and r.json()["error"]["code"] == "input.frames"
    assert "frames" in r.json()["error"]["message"]
    assert error_code(InputError("steps must be at least 1")) == "input.steps"


# ------------------------------------------------------------------ limits, uploads, keys, paths

def test_limits_and_bad_requests(tmp_path, model, warm):
    s = Server(tmp_path / "d", model, warm, limits=Limits(max_frames=9, max_side=32, max_steps=10, max_queue=2,
                                                          max_upload_mb=0.01))
    for body, code in ((dict(frames=17), "input.frames"), (dict(height=64), "input.height"),
                       (dict(steps=11), "input.steps"), (dict(seconds=100.0), "input.seconds"),
                       (dict(bogus=1), "input.bogus"), (dict(seed=-1), "input.seed"), (dict(mode="dance"), "input.mode"),
                       (dict(image="upload_" + "0" * 24), "input.image"), (dict(image="../../etc/passwd"), "input.image")):
        r = s.post(prompt="x", **body)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (body, r.json())
    assert s.post(prompt="a", **SMALL).status_code == 202 and s.post(prompt="b", **SMALL).status_code == 202
    full = s.post(prompt="c", **SMALL)
    assert full.status_code == 429 and full.headers["retry-after"] == "5"
    big = s.client.post("/v1/uploads", files={"file": ("a.mp4", b"\0" * 20_000, "video/mp4")})
    assert big.status_code == 413 and big.json()["error"]["code"] == "input.file"
    for name, content in (("a.mp4", b"not a video at all"), ("a.exe", b"MZ"), ("a.png", b"")):
        r = s.client.post("/v1/uploads", files={"file": (name, content, "application/octet-stream")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "input.file"
    assert not [p for p in (s.data / "uploads").iterdir()]  # nothing refused was kept


def test_uploads_feed_image_to_video_and_edit(server, tmp_path):
    frames = np.zeros((1, 24, 24, 3), np.uint8)
    frames[:, 4:12, 4:12] = (250, 30, 30)
    Video(frames).save(tmp_path / "still.png")
    r = server.client.post("/v1/uploads", files={"file": ("still.png", (tmp_path / "still.png").read_bytes(),
                                                          "image/png")})
    assert r.status_code == 201
    up = r.json()
    assert (up["kind"], up["frames"], up["height"], up["width"]) == ("image", 1, 24, 24)
    job = server.post(prompt="a red square", image=up["id"], **SMALL).json()
    server.start()
    assert server.wait(job["id"])["status"] == "succeeded"
    made = _made(server, {"prompt": "a red square", "seed": job["seed"], "inputs": {"image": str(tmp_path / "still.png")},
                          **SMALL})
    assert _close(server.video(job["id"]), made)  # the uploaded still led the clip
    plain = _made(server, {"prompt": "a red square", "seed": job["seed"], **SMALL})
    assert not _close(server.video(job["id"]), plain)
    edit = server.post(mode="edit", prompt="a blue square", video=up["id"], height=16, width=16, steps=2).json()
    assert server.wait(edit["id"])["status"] == "succeeded"


def test_keys_separate_callers(tmp_path, model, warm):
    s = Server(tmp_path / "d", model, warm, keys=("alpha-key", "beta-key"))
    a, b = {"Authorization": "Bearer alpha-key"}, {"X-API-Key": "beta-key"}
    assert s.post(prompt="x", **SMALL).status_code == 401
    assert s.post(headers={"Authorization": "Bearer wrong"}, prompt="x", **SMALL).status_code == 401
    job = s.post(headers=a, prompt="x", **SMALL).json()
    assert s.client.get(f"/v1/videos/{job['id']}", headers=a).status_code == 200
    assert s.client.get(f"/v1/videos/{job['id']}", headers=b).status_code == 404
    assert s.client.delete(f"/v1/videos/{job['id']}", headers=b).status_code == 404
    assert s.client.get("/v1/videos", headers=b).json()["data"] == []
    assert s.client.get("/metrics").status_code == 401 and s.client.get("/healthz").status_code == 200
    up = s.client.post("/v1/uploads", headers=a, files={"file": ("s.png", _png(tmp_path), "image/png")}).json()
    r = s.post(headers=b, prompt="x", image=up["id"], **SMALL)
    assert r.status_code == 400 and r.json()["error"]["code"] == "input.image"  # another key's upload


def test_file_routes_take_ids_never_paths(server, tmp_path):
    job = server.post(prompt="a red circle", **SMALL).json()
    server.start()
    server.wait(job["id"])
    for bad in ("../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                "..\\..\\etc\\passwd", "/etc/passwd", "%2Fetc%2Fpasswd", job["id"] + "%2F..%2F..%2Fjobs.sqlite3",
                job["id"] + "/..%2F..%2Fjobs.sqlite3", "%2E%2E%5C%2E%2E%5Cjobs.sqlite3", job["id"] + "%00"):
        for route in ("/v1/videos/{}", "/v1/videos/{}/content", "/v1/videos/{}/events"):
            r = server.client.get(route.format(bad))
            assert r.status_code in (404, 405), (bad, route, r.status_code)
            assert b"root:" not in r.content and b"SQLite" not in r.content
    r = server.client.get(f"/v1/videos/{job['id']}/content", params={"variant": "../jobs.sqlite3"})
    assert r.status_code == 400
    # a link planted where an output was is not followed
    video = server.data / "outputs" / job["id"] / "video.mp4"
    video.unlink()
    video.symlink_to("/etc/passwd")
    assert server.client.get(f"/v1/videos/{job['id']}/content").status_code == 404


# ------------------------------------------------------------------ monitoring

def test_metrics_health_and_readiness(server):
    assert server.client.get("/readyz").status_code == 503  # no worker yet
    ids = [server.post(prompt="a red circle moves left", **SMALL).json()["id"] for _ in range(2)]
    server.client.delete(f"/v1/videos/{server.post(prompt='x', **SMALL).json()['id']}")
    server.start()
    for i in ids:
        server.wait(i)
    assert server.client.get("/readyz").status_code == 200
    text = server.client.get("/metrics").text
    assert 'kinema_jobs_total{mode="generate",status="succeeded"} 2.0' in text
    assert 'kinema_jobs_total{mode="generate",status="cancelled"} 1.0' in text
    assert "kinema_queue_depth 0.0" in text and "kinema_sampling_steps_total 4.0" in text  # 2 steps, 2 jobs
    assert 'kinema_job_seconds_count{mode="generate"} 2.0' in text and "kinema_queue_wait_seconds_bucket" in text
    assert "kinema_output_agreement" in text and "kinema_workers_ready 1.0" in text
    assert server.client.get("/docs").status_code == 200 and "/v1/videos" in server.client.get("/openapi.json").text
    assert "<title>kinema studio</title>" in server.client.get("/").text


def test_prompt_readings_and_the_canary_comparison():
    assert prompt_attributes("A crimson ball drifts left while a blue box rises") == {
        "colors": ["blue", "red"], "shapes": ["circle", "square"]}
    assert prompt_attributes("a portrait of my grandmother") is None
    rng = np.random.default_rng(0)
    first = {"readings": [{"colors": ["red"], "shapes": ["circle"], "motions": ["left"]}] * 4,
             "frame_features": rng.normal(size=(40, 8)).tolist()}
    same = compare_canary(first, first)
    assert same["agreement"] == 1.0 and same["frame_distance"] == 0.0 and not same["drift"]
    swapped = {"readings": [{"colors": ["blue"], "shapes": ["star"], "motions": ["left"]}] * 4,
               "frame_features": (rng.normal(size=(40, 8)) + 1.0).tolist()}
    moved = compare_canary(first, swapped)
    assert moved["agreement"] < 0.5 and moved["drift"]


# ------------------------------------------------------------------ the command

def test_serve_refuses_to_bind_beyond_loopback_without_a_key(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "8765"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: serving on 0.0.0.0") and "--api-key" in err and "Traceback" not in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(InputError, match="cannot listen"):
            check_bind("127.0.0.1", s.getsockname()[1], ())


def test_kill_9_of_the_server_loses_no_job(tmp_path, model):
    """A real `kinema serve` (API + worker process) killed with SIGKILL mid-job, then restarted on
    the same data folder: every job finishes, the interrupted one re-made from its seed."""
    port = _free_port()
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "kinema", "serve", "--model", str(model), "--data", str(data), "--port", str(port),
           "--max-steps", "1000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port)
        ids = [_post(port, {"prompt": f"clip {i}", "seed": i, "frames": 5, "height": 16, "width": 16,
                            "steps": 1000 if i == 0 else 2}) for i in range(3)]
        while _get(port, ids[0])["status"] != "running" or _get(port, ids[0])["progress"] < 0.05:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    time.sleep(0.5)
    assert Store(data).get(ids[0])["status"] == "running"  # as the killed server left it
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port)
        t0 = time.time()
        while any(_get(port, i)["status"] != "succeeded" for i in ids):
            assert time.time() - t0 < 120, [_get(port, i)["status"] for i in ids]
            time.sleep(0.2)
        statuses = [e["data"].get("status") for e in Store(data).events(ids[0]) if e["type"] == "status"]
        assert statuses[-3:] == ["queued", "running", "succeeded"] and statuses.count("running") == 2
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)


def _made(server, request) -> Video:
    """The same request through the job runner in this process (watermark included)."""
    from kinema.jobs import run
    out = server.data / f"made-{time.perf_counter_ns()}.mp4"
    run({"mode": "generate", **request}, {"video": out}, pipe=server.worker.pipe, model=str(server.model))
    return Video.read(out)


def _close(served: Video, made: Video, folder=None) -> bool:
    """The served mp4 is `made` (an mp4 read back; else written as one here), up to rounding: a
    batch (and bf16) may round a last bit differently, and the encoder may then choose other
    blocks: a mean, not a maximum."""
    if folder is not None:
        made.save(folder / "made.mp4")
        made = Video.read(folder / "made.mp4")
    return np.abs(served.frames.astype(float) - made.frames).mean() <= 2.0


def _png(tmp_path):
    Video(np.full((1, 16, 16, 3), 200, np.uint8)).save(tmp_path / "s.png")
    return (tmp_path / "s.png").read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port, timeout=90):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not get ready")


def _post(port, body) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/videos", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["id"]


def _get(port, job_id) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/videos/{job_id}", timeout=10) as r:
        return json.loads(r.read())


def test_the_canary_notices_a_changed_model(server, model):
    """--canary-every: fixed prompts and seeds; the first canary is the reference, the same model
    repeats it exactly, a changed one (here: its weights perturbed, as a swapped checkpoint) drifts."""
    import torch

    from kinema.pipeline import load
    store = Store(server.data)
    worker = server.worker
    for _ in range(2):
        store.add("canary", {"mode": "generate", "prompt": "canary"}, 0, None, kind="canary")
        assert worker.once()
    first = json.loads((server.data / "canary.json").read_text())
    assert first["agreement"] == 1.0 and first["frame_distance"] == 0.0 and not first["drift"]
    changed = load(model)
    with torch.no_grad():
        for p in changed.transformer.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    worker.pipe = changed
    store.add("canary", {"mode": "generate", "prompt": "canary"}, 0, None, kind="canary")
    assert worker.once()
    after = json.loads((server.data / "canary.json").read_text())
    assert after["drift"] and (after["agreement"] < 1.0 or after["frame_distance"] > 0)
    text = server.client.get("/metrics").text
    assert "kinema_canary_drift 1.0" in text and "kinema_canary_agreement" in text
    assert server.client.get("/v1/videos").json()["data"] == []  # canaries are not anyone's jobs


def test_two_workers_share_one_queue_and_claim_each_job_once(server, warm):
    ids = [server.post(prompt=f"a red circle {i}", seed=i, frames=5, height=16, width=16 + 8 * (i % 3),
                       steps=2).json()["id"] for i in range(8)]
    other = Worker(server.data, server.model)
    other.pipe, other.reader, other.keep = warm.pipe, warm.reader, warm.keep
    stop = threading.Event()
    thread = threading.Thread(target=other.serve, args=(stop,), daemon=True)
    thread.start()
    server.start()
    try:
        jobs = [server.wait(i) for i in ids]
    finally:
        stop.set()
        thread.join(30)
    assert [j["status"] for j in jobs] == ["succeeded"] * 8, [j["error"] for j in jobs]
    store = Store(server.data)
    for i in ids:  # one claim each: queued, running, succeeded
        assert [e["data"]["status"] for e in store.events(i) if e["type"] == "status"] == \
            ["queued", "running", "succeeded"]
