"""Load on `kinema serve`: concurrent clients on loopback, against in-process generation.

    python benchmarks/serve_load.py [--clients 8] [--jobs 48] [--max-minutes 10] [--kill]
        [--json docs/serve_load.json]

1. In-process: the same model generates --reference clips one at a time, warm (what a script that
   imports kinema gets), then as one batch of --clients: clips per second for both.
2. A real server (`kinema serve`, one worker; the API and the worker share the machine as they
   would in production) on a new data folder: --clients threads each submit a job, wait for it
   (polling GET /v1/videos/ID), then submit the next, until --jobs are done or --max-minutes pass.
   Throughput (clips per second of wall time), p50 / p95 latency (submission to finished), and the
   resident memory of the server's processes (API + worker), sampled every 0.5 s.
3. With --kill: once half the jobs are submitted, the server is killed with SIGKILL, started
   again on the same folder, and the clients go on; at the end every job submitted must have
   succeeded (none lost, none failed).

Every clip is the model's default (17 frames, 64x64, its steps), its prompt one of kinema's own,
its seed the job's number.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

PROMPTS = ["a red circle moves to the right", "a blue square moves up", "a green triangle spins",
           "a yellow star bounces", "a magenta ring moves left", "a cyan circle grows"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, {"Content-Type": "application/json"},
                                 method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the workers), in MB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration, ValueError):
            pass
    return total / 1024


class Server:
    def __init__(self, data: Path, port: int, model: str | None):
        self.cmd = [sys.executable, "-m", "kinema", "serve", "--data", str(data), "--port", str(port),
                    "--max-queue", "1000", *(["--model", model] if model else [])]
        self.port, self.proc = port, None

    def start(self) -> float:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while time.perf_counter() - t0 < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("the server did not get ready in 120 s")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def in_process(model: str | None, n: int, batch: int) -> dict:
    """Clips a second of a warm pipeline in this process: bare `generate` calls one at a time and
    as one batch, and whole jobs (kinema.jobs.run: the video, its contact sheet and thumbnail
    written, as a server's worker does) one at a time."""
    import kinema
    from kinema.jobs import run
    pipe = kinema.load(model)
    pipe.generate(PROMPTS[0], seed=0, progress=False)  # warm
    t0 = time.perf_counter()
    for i in range(n):
        pipe.generate(PROMPTS[i % len(PROMPTS)], seed=i, progress=False)
    single = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    pipe.generate([PROMPTS[i % len(PROMPTS)] for i in range(batch)], seed=list(range(batch)), progress=False)
    batched = batch / (time.perf_counter() - t0)
    folder = Path(tempfile.mkdtemp(prefix="kinema-jobs-"))
    t0 = time.perf_counter()
    for i in range(n):
        out = {"video": folder / f"{i}.mp4", "sheet": folder / f"{i}.png", "thumbnail": folder / f"{i}_t.png"}
        run({"mode": "generate", "prompt": PROMPTS[i % len(PROMPTS)], "seed": i}, out, pipe=pipe, model=model)
    jobs = n / (time.perf_counter() - t0)
    return {"clips_per_second_single": round(single, 3), "clips_per_second_batch": round(batched, 3),
            "jobs_per_second_single": round(jobs, 3), "batch": batch, "clips": n}


def load(args) -> dict:
    data = Path(tempfile.mkdtemp(prefix="kinema-load-"))
    port = free_port()
    server = Server(data, port, args.model)
    startup = server.start()
    submitted, latencies, lock = [], [], threading.Lock()
    memory, stop = [], threading.Event()
    deadline = time.time() + args.max_minutes * 60
    killed = {"done": False, "restart_s": None}

    def sample():
        while not stop.wait(0.5):
            memory.append((time.time(), rss_mb(server.proc.pid)))

    def client(k: int):
        while time.time() < deadline:
            with lock:
                if len(submitted) >= args.jobs:
                    return
                i = len(submitted)
                submitted.append(None)
            body = {"prompt": PROMPTS[i % len(PROMPTS)], "seed": i}
            t0 = time.time()
            while True:
                try:
                    job = call(port, "POST", "/v1/videos", body)
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.2)  # the server is restarting
            with lock:
                submitted[i] = job["id"]
            while time.time() < deadline + 600:
                try:
                    job = call(port, "GET", f"/v1/videos/{job['id']}")
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.2)
                    continue
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.25)  # a client polling four times a second (or following /events)
            with lock:
                latencies.append((time.time() - t0, job["status"]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    if args.kill:
        while len(submitted) < args.jobs // 2 and time.time() < deadline:
            time.sleep(0.05)
        server.kill()
        killed["done"] = True
        killed["restart_s"] = round(server.start(), 2)
    for t in threads:
        t.join()
    wall = time.time() - t0
    stop.set()
    final, batches = {}, []
    for job_id in filter(None, submitted):
        job = call(port, "GET", f"/v1/videos/{job_id}")
        final[job_id] = job["status"]
        batches.append((job["result"] or {}).get("batch", 1))
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    server.stop()
    lat = np.array([s for s, status in latencies if status == "succeeded"])
    mem = np.array([m for _, m in memory]) if memory else np.zeros(1)
    third = max(1, len(mem) // 3)
    return {"clients": args.clients, "jobs_submitted": len([s for s in submitted if s]),
            "jobs_succeeded": sum(s == "succeeded" for s in final.values()),
            "jobs_other": {k: v for k, v in final.items() if v != "succeeded"},
            "wall_seconds": round(wall, 1), "clips_per_second": round(len(lat) / wall, 3),
            "latency_p50_s": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "latency_p95_s": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
            "mean_batch": round(float(np.mean(batches)), 2) if batches else None,
            "startup_s": round(startup, 2), "killed_and_restarted": killed["done"], "restart_s": killed["restart_s"],
            "rss_mb_first_third": round(float(mem[:third].mean()), 1),
            "rss_mb_last_third": round(float(mem[-third:].mean()), 1), "rss_mb_max": round(float(mem.max()), 1),
            "metrics_sample": [line for line in metrics.splitlines() if line.startswith(("kinema_jobs_total",
                                                                                          "kinema_queue_depth"))]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model folder (default: the shipped model)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--jobs", type=int, default=48, help="jobs in all (default: 48)")
    p.add_argument("--reference", type=int, default=16, help="clips generated in-process, one at a time (default: 16)")
    p.add_argument("--max-minutes", type=float, default=10.0, help="stop submitting after this long (default: 10)")
    p.add_argument("--kill", action="store_true", help="kill -9 the server half way and restart it")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    os.environ.setdefault("KINEMA_CACHE", tempfile.mkdtemp(prefix="kinema-cache-"))
    from kinema.runtime import describe
    result = {"in_process": in_process(args.model, args.reference, args.clients), "server": load(args),
              "machine": describe()}
    ip, sv = result["in_process"], result["server"]
    result["server_vs_in_process_single"] = round(sv["clips_per_second"] / ip["clips_per_second_single"], 3)
    result["server_vs_in_process_jobs"] = round(sv["clips_per_second"] / ip["jobs_per_second_single"], 3)
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
