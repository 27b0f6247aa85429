"""A worker: one warm model, a loop that claims jobs from the store and runs them through the
job runner (kinema.jobs, as the CLI does), reporting every sampling step.

Several workers (processes of one `kinema serve`, or `kinema serve --worker` processes on the same
data folder) share the queue: the store hands each job to one of them. Jobs of one shape that wait
together run as one batch. A cancel is seen at the next sampling step (each step asks the store
which of its jobs still run); a worker that dies leaves its jobs to be queued again (store.recover)
and re-made from their seeds.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import traceback
from pathlib import Path

from ..errors import Cancelled, CheckpointError, InputError, KinemaError, VideoReadError, WriteError
from .. import jobs as runner
from .store import Store, worker_id

log = logging.getLogger("kinema.serve")
OUTPUT_FILES = {"video": "video.mp4", "sheet": "sheet.png", "thumbnail": "thumbnail.png"}
FIELDS = ("frames", "seconds", "height", "width", "fps", "steps", "guidance", "guidance_interval", "sampler", "seed",
          "strength", "fit", "context", "prompt", "image", "last_image", "keyframes", "video", "first", "last",
          "mask", "loras", "mode")


def error_code(e: BaseException) -> str:
    """A dot-separated code for a failed job: input.FIELD where the message names a field."""
    if isinstance(e, VideoReadError):
        return "input.file"
    if isinstance(e, InputError):
        words = re.findall(r"[a-z_]+", str(e).lower())
        field = next((w for w in words if w in FIELDS), None)
        return f"input.{field}" if field else "input"
    if isinstance(e, CheckpointError):
        return "model"
    if isinstance(e, WriteError):
        return "output"
    return "internal" if not isinstance(e, KinemaError) else "kinema"


def output_folder(data: Path, job: str) -> Path:
    return data / "outputs" / job


class Worker:
    def __init__(self, data: str | Path, model=None, *, batch: int = 8, adapters: str | Path | None = None,
                 poll: float = 0.05):
        self.data, self.model, self.batch, self.poll = Path(data), model, batch, poll
        self.adapters = Path(adapters) if adapters else None
        self.store = Store(self.data)
        self.id = worker_id()
        self.pipe = self.reader = None
        self.keep = ()

    def load(self) -> "Worker":
        from ..pipeline import load
        from .monitor import Reader
        self.store.beat(self.id, ready=False, model=str(self.model))
        self.pipe = load(self.model)
        self.keep = tuple(self.pipe.loras)  # adapters that came with the model (a LoRA run)
        self.reader = Reader()
        self.store.beat(self.id, ready=True, model=str(self.model))
        return self

    # -- the loop
    def serve(self, stop: threading.Event) -> None:
        if self.pipe is None:
            self.load()
        self.store.beat(self.id, ready=True, model=str(self.model))
        beat = threading.Thread(target=self._beat, args=(stop,), daemon=True)
        beat.start()
        last_recover = 0.0
        try:
            while not stop.is_set():
                if time.time() - last_recover > 2.0:
                    self.store.recover()
                    last_recover = time.time()
                if not self.once():
                    stop.wait(self.poll)
        finally:
            self.store.leave(self.id)

    def _beat(self, stop: threading.Event) -> None:
        store = Store(self.data)  # its own connection: it runs beside sampling
        while not stop.wait(2.0):
            try:
                store.beat(self.id)
            except Exception:  # a locked database for longer than the timeout: try again next beat
                log.exception("heartbeat failed")

    def once(self) -> bool:
        """Claim and run what waits (a batch at most); False when nothing waited."""
        jobs = self.store.claim(self.id, self.batch)
        if not jobs:
            return False
        if jobs[0]["kind"] == "canary":
            self._canary(jobs[0])
        else:
            self._run(jobs)
        return True

    # -- one batch of jobs
    def _request(self, job: dict) -> dict:
        """The stored request (upload ids, adapter names) as the runner's (file paths)."""
        import json
        request = json.loads(job["request"])
        inputs = {}
        for name, ref in (request.pop("inputs", None) or {}).items():
            if name == "keyframes":
                inputs[name] = {int(i): self._upload(u) for i, u in ref.items()}
            elif ref:
                inputs[name] = self._upload(ref)
        loras = []
        for item in request.pop("loras", None) or []:
            if self.adapters is None or not (self.adapters / item["name"]).is_dir():
                raise InputError(f"no adapter named {item['name']!r} on this server")
            loras.append([str(self.adapters / item["name"]), item.get("scale", 1.0)])
        return {**request, "inputs": inputs, "loras": loras, "seed": job["seed"]}

    def _upload(self, upload: str) -> str:
        row = self.store.upload(upload)
        if row is None:
            raise InputError(f"upload {upload} is gone")
        return str(self.data / "uploads" / row["file"])

    def _run(self, jobs: list[dict]) -> None:
        ids = [j["id"] for j in jobs]
        folders = [output_folder(self.data, j) for j in ids]
        steps = {"n": 0}

        def on_step(info: dict) -> None:
            steps["n"] += 1
            done = (info["window"] * info["steps"] + info["step"]) / (info["windows"] * info["steps"])
            if not self.store.step(ids, self.id, round(min(done, 0.999), 4), info):
                raise Cancelled("every job of this batch was cancelled")
        try:
            requests = [self._request(j) for j in jobs]
            outputs = []
            for folder in folders:  # a job run again (its worker died) starts from an empty folder
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                outputs.append({k: folder / v for k, v in OUTPUT_FILES.items()})
            if len(jobs) > 1 or runner.batch_key(requests[0]) is not None:
                results = runner.run_batch(requests, outputs, pipe=self.pipe, model=self.model, keep_loras=self.keep,
                                           on_step=on_step)
            else:
                results = [runner.run(requests[0], outputs[0], pipe=self.pipe, model=self.model, keep_loras=self.keep,
                                      on_step=on_step)]
        except Cancelled:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
            return
        except Exception as e:  # the jobs failed; the worker goes on
            if not isinstance(e, KinemaError):
                log.error("job %s failed:\n%s", ",".join(ids), traceback.format_exc())
            message = str(e) if isinstance(e, KinemaError) else f"{type(e).__name__}: {e}"
            for job, folder in zip(ids, folders):
                shutil.rmtree(folder, ignore_errors=True)
                self.store.finish(job, self.id, "failed", error=(error_code(e), message))
            return
        from ..video import Video
        for job, request, folder, result in zip(ids, requests, folders, results):
            agreement = None
            try:
                agreement = self.reader.agreement(Video.read(folder / OUTPUT_FILES["video"]), request.get("prompt", ""))
            except Exception:
                log.exception("reading job %s's output", job)
            public = {k: v for k, v in result.items() if k not in ("out", "sheet", "thumbnail", "provenance")}
            marks = result.get("provenance") or {}
            public["provenance"] = {  # file names, not the server's paths
                "watermark": {k: marks["watermark"][k] for k in ("model_id", "serial", "payload")}
                if marks.get("watermark") else None,
                "manifest": [k for k, v in OUTPUT_FILES.items() if any(str(p).endswith("/" + v)
                                                                        for p in marks.get("manifest") or [])]}
            public["sampling_steps"] = steps["n"]
            if not self.store.finish(job, self.id, "succeeded", outputs=dict(OUTPUT_FILES), result=public,
                                     agreement=agreement):
                shutil.rmtree(folder, ignore_errors=True)  # cancelled while its batch-mates finished

    def _canary(self, job: dict) -> None:
        from .monitor import CANARY_PROMPTS, CANARY_SEEDS, record_canary
        try:
            videos = self.pipe.generate(list(CANARY_PROMPTS), seed=list(CANARY_SEEDS), progress=False,
                                        watermark=False)  # the model's own readings
            result = record_canary(self.data, self.reader.canary(videos))
        except Exception as e:
            log.exception("canary failed")
            self.store.finish(job["id"], self.id, "failed", error=(error_code(e), str(e)))
            return
        self.store.finish(job["id"], self.id, "succeeded", result=result)


def worker_main(data: str, model, batch: int, adapters, threads: int | None, child: bool = True) -> None:
    """A worker process's body: a `kinema serve` child (`child`), or `kinema serve --worker` itself."""
    import signal

    import torch
    if child:
        _die_with_parent()
    if threads:
        torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Worker(data, model, batch=batch, adapters=adapters).serve(stop)


def _die_with_parent() -> None:
    """A worker of `kinema serve` ends with it, even on kill -9 (Linux: PR_SET_PDEATHSIG), so the
    restarted server runs its jobs again instead of an orphan finishing them unseen."""
    import ctypes
    import os
    import signal
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the call
        os._exit(1)
