"""`kinema serve`: the API process (uvicorn + FastAPI, server/app.py) and its worker processes
(server/worker.py), sharing one job store (server/store.py) in the data folder.

    kinema serve                          # http://127.0.0.1:8000, one worker, data in ./kinema-data
    kinema serve --host 0.0.0.0 --api-key $KEY --workers 2
    kinema serve --worker --data DIR      # one more worker on another machine's shared folder
"""

from __future__ import annotations

import ipaddress
import logging
import multiprocessing as mp
import os
import socket
import threading
import time
from pathlib import Path

from ..errors import InputError

log = logging.getLogger("kinema.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, keys: tuple[str, ...]) -> None:
    """Refuse to serve beyond this machine without a key, and a port that is taken."""
    if not is_loopback(host) and not keys:
        raise InputError(f"serving on {host} (beyond this machine) needs an API key: --api-key KEY or "
                         f"KINEMA_API_KEY (anyone who can reach the port could run jobs)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(f"--host {host}: {e.strerror}") from e
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror} (another server there? try --port)") from e


def start_workers(data: Path, model, n: int, batch: int, adapters) -> list:
    from .worker import worker_main
    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // max(n, 1))
    procs = []
    for _ in range(n):
        p = ctx.Process(target=worker_main, args=(str(data), model, batch, adapters, threads), daemon=True)
        p.start()
        procs.append(p)
    return procs


def _supervise(procs: list, stop: threading.Event, data: Path, model, batch: int, adapters) -> None:
    """Start a worker again when one dies (its jobs are queued again by the store)."""
    while not stop.wait(2.0):
        for i, p in enumerate(procs):
            if not p.is_alive() and not stop.is_set():
                log.warning("worker %s exited (%s); starting another", p.pid, p.exitcode)
                procs[i] = start_workers(data, model, 1, batch, adapters)[0]


def _canary(store, every: float, stop: threading.Event) -> None:
    """Queue a canary job every `every` seconds (none while one waits or runs)."""
    from .monitor import CANARY_PROMPTS
    while not stop.wait(every):
        busy = store._q("SELECT COUNT(*) FROM jobs WHERE kind = 'canary' AND status IN ('queued', 'running')")[0][0]
        if not busy:
            store.add("canary", {"mode": "generate", "prompt": " | ".join(CANARY_PROMPTS)}, 0, None, kind="canary")


def serve(*, model=None, host: str = "127.0.0.1", port: int = 8000, data: str | Path = "kinema-data",
          workers: int = 1, keys: tuple[str, ...] = (), limits=None, adapters=None, canary_every: float = 0.0,
          log_level: str = "info") -> None:
    import uvicorn

    from .app import Limits, Settings, create_app
    from .store import Store
    check_bind(host, port, keys)
    data = Path(data).resolve()
    limits = limits or Limits()
    if model is not None:
        from ..pipeline import model_spec
        model_spec(model)  # a model folder kinema can read, before anything starts
    store = Store(data)
    back = store.recover()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if back:
        log.info("queued again %d jobs whose worker had stopped", len(back))
    stop = threading.Event()
    procs = start_workers(data, model, workers, limits.max_batch, adapters)
    threading.Thread(target=_supervise, args=(procs, stop, data, model, limits.max_batch, adapters),
                     daemon=True).start()
    if canary_every > 0:
        threading.Thread(target=_canary, args=(Store(data), canary_every, stop), daemon=True).start()
    app = create_app(Settings(data=data, model=model, keys=tuple(keys), limits=limits,
                              adapters=Path(adapters) if adapters else None, canary_every=canary_every))
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        stop.set()
        for p in procs:
            p.terminate()
        deadline = time.time() + 10
        for p in procs:
            p.join(max(0.1, deadline - time.time()))


def run_worker(*, model=None, data: str | Path = "kinema-data", batch: int = 8, adapters=None) -> None:
    from .worker import worker_main
    worker_main(str(Path(data).resolve()), model, batch, adapters, None, child=False)
