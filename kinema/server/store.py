"""Jobs, uploads and their events in SQLite (WAL), under the server's data folder.

Every process (the API, each worker, a `kinema serve --worker` on the same folder) opens its own
connection; a job is claimed inside one write transaction (BEGIN IMMEDIATE), so it is claimed
once. A running job carries its worker's id and a heartbeat: a job whose worker died (kill -9,
a crash, a lost machine) is queued again, with its seed, and re-made exactly. Statuses:

    queued -> running -> succeeded | failed | cancelled        (cancelled also straight from queued)

Events (one per sampling step, one per status change) are rows numbered per job, so a client
that reconnects with Last-Event-ID misses none. `finished` keeps one row per finished job for the
metrics (a deleted job's counts stay counted).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, mode TEXT NOT NULL, status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0, request TEXT NOT NULL, seed INTEGER NOT NULL, batch_key TEXT,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, error_code TEXT, error_message TEXT,
    outputs TEXT, result TEXT, worker TEXT, heartbeat REAL, attempts INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'job');
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(status, created_at);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, created_at);
CREATE TABLE IF NOT EXISTS events (
    job TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (job, seq));
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, file TEXT NOT NULL, filename TEXT NOT NULL, kind TEXT NOT NULL,
    bytes INTEGER NOT NULL, frames INTEGER NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL,
    fps REAL NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, started_at REAL NOT NULL, heartbeat REAL NOT NULL, ready INTEGER NOT NULL DEFAULT 0,
    model TEXT);
CREATE TABLE IF NOT EXISTS finished (
    job TEXT PRIMARY KEY, mode TEXT NOT NULL, status TEXT NOT NULL, wait_s REAL, run_s REAL,
    steps INTEGER NOT NULL DEFAULT 0, agreement REAL, at REAL NOT NULL);
"""
ACTIVE = ("queued", "running")
DONE = ("succeeded", "failed", "cancelled")
STALE_SECONDS = 15.0  # a running job whose heartbeat is older belongs to a dead worker


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _alive_here(worker: str | None) -> bool | None:
    """Whether a worker of this machine still runs (None: another machine's, ask its heartbeat)."""
    try:
        host, pid, _ = (worker or "").split(":")
    except ValueError:
        return False
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Store:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.folder / "jobs.sqlite3", timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()  # one connection, shared by the API's request threads
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- writing, one transaction at a time
    def _write(self, fn):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                out = fn()
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return out

    def _q(self, sql: str, args=()) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def _event(self, job: str, type: str, data: dict) -> None:
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job = ?", (job,)).fetchone()[0]
        self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (job, seq, time.time(), type, json.dumps(data)))

    # -- jobs
    def add(self, owner: str, request: dict, seed: int, batch_key: str | None, max_queued: int | None = None,
            kind: str = "job") -> dict | None:
        """A new queued job; None when `max_queued` jobs are already waiting."""
        job = new_id("video")

        def write():
            if max_queued is not None and self.queued() >= max_queued:
                return None
            self.db.execute("INSERT INTO jobs (id, owner, mode, status, request, seed, batch_key, created_at, kind) "
                            "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                            (job, owner, request["mode"], json.dumps(request), seed, batch_key, time.time(), kind))
            self._event(job, "status", {"status": "queued", "progress": 0.0})
            return job
        return None if self._write(write) is None else self.get(job)

    def get(self, job: str) -> dict | None:
        rows = self._q("SELECT * FROM jobs WHERE id = ?", (job,))
        return dict(rows[0]) if rows else None

    def list(self, owner: str | None, limit: int = 20, after: str | None = None, kind: str = "job") -> list[dict]:
        """Newest first; `after`: the id of the last job of the previous page."""
        where, args = ["kind = ?"], [kind]
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if after is not None:
            last = self.get(after)
            if last is None:
                return []
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [last["created_at"], last["created_at"], after]
        rows = self._q(f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?",
                       (*args, limit))
        return [dict(r) for r in rows]

    def queued(self) -> int:
        return self._q("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")[0][0]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._q("SELECT status, COUNT(*) FROM jobs GROUP BY status")}

    def recover(self) -> list[str]:
        """Queue again the running jobs whose worker is gone: dead on this machine, or silent for
        STALE_SECONDS. Returns their ids."""
        def write():
            back = []
            for row in self.db.execute("SELECT id, worker, heartbeat FROM jobs WHERE status = 'running'").fetchall():
                alive = _alive_here(row["worker"])
                if alive is False or (alive is None and (row["heartbeat"] or 0) < time.time() - STALE_SECONDS):
                    self.db.execute("UPDATE jobs SET status = 'queued', progress = 0, worker = NULL, started_at = NULL "
                                    "WHERE id = ?", (row["id"],))
                    self._event(row["id"], "status", {"status": "queued", "progress": 0.0, "requeued": True})
                    back.append(row["id"])
            return back
        return self._write(write)

    def claim(self, worker: str, batch: int = 1) -> list[dict]:
        """The oldest queued job and up to batch - 1 more waiting with the same batch key, now
        running on `worker`; [] when nothing waits."""
        def write():
            first = self.db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY created_at, id "
                                    "LIMIT 1").fetchone()
            if first is None:
                return []
            rows = [first]
            if first["batch_key"] is not None and batch > 1:
                rows += self.db.execute("SELECT * FROM jobs WHERE status = 'queued' AND batch_key = ? AND id != ? "
                                        "ORDER BY created_at, id LIMIT ?",
                                        (first["batch_key"], first["id"], batch - 1)).fetchall()
            now = time.time()
            for r in rows:
                self.db.execute("UPDATE jobs SET status = 'running', started_at = ?, worker = ?, heartbeat = ?, "
                                "attempts = attempts + 1, progress = 0 WHERE id = ?", (now, worker, now, r["id"]))
                self._event(r["id"], "status", {"status": "running", "progress": 0.0})
            return [r["id"] for r in rows]
        return [self.get(j) for j in self._write(write)]

    def running(self, jobs: list[str], worker: str) -> list[str]:
        """Those of `jobs` still running on `worker` (not cancelled, deleted or taken over)."""
        marks = ",".join("?" * len(jobs))
        return [r[0] for r in self._q(f"SELECT id FROM jobs WHERE id IN ({marks}) AND status = 'running' "
                                      f"AND worker = ?",
                                      (*jobs, worker))]

    def step(self, jobs: list[str], worker: str, progress: float, data: dict) -> list[str]:
        """A sampling step of `jobs`: progress, heartbeat and an event; returns those still running."""
        def write():
            live = self.running(jobs, worker)
            now = time.time()
            for j in live:
                self.db.execute("UPDATE jobs SET progress = ?, heartbeat = ? WHERE id = ?", (progress, now, j))
                self._event(j, "progress", {"progress": progress, **data})
            return live
        return self._write(write)

    def beat(self, worker: str, ready: bool = True, model: str | None = None) -> None:
        """A worker is alive (and its running jobs with it)."""
        def write():
            now = time.time()
            self.db.execute("UPDATE jobs SET heartbeat = ? WHERE worker = ? AND status = 'running'", (now, worker))
            self.db.execute("INSERT INTO workers (id, started_at, heartbeat, ready, model) VALUES (?, ?, ?, ?, ?) "
                            "ON CONFLICT(id) DO UPDATE SET heartbeat = excluded.heartbeat, ready = excluded.ready",
                            (worker, now, now, int(ready), model))
            self.db.execute("DELETE FROM workers WHERE heartbeat < ?", (now - 10 * STALE_SECONDS,))
        self._write(write)

    def leave(self, worker: str) -> None:
        self._write(lambda: self.db.execute("DELETE FROM workers WHERE id = ?", (worker,)))

    def workers_ready(self) -> int:
        return self._q("SELECT COUNT(*) FROM workers WHERE ready = 1 AND heartbeat > ?",
                       (time.time() - STALE_SECONDS,))[0][0]

    def finish(self, job: str, worker: str, status: str, *, outputs: dict | None = None, result: dict | None = None,
               error: tuple[str, str] | None = None, agreement: float | None = None) -> bool:
        """Record how a running job ended; False if it was no longer this worker's (cancelled)."""
        def write():
            row = self.db.execute("SELECT * FROM jobs WHERE id = ? AND status = 'running' AND worker = ?",
                                  (job, worker)).fetchone()
            if row is None:
                return False
            now = time.time()
            self.db.execute("UPDATE jobs SET status = ?, finished_at = ?, progress = ?, outputs = ?, result = ?, "
                            "error_code = ?, error_message = ? WHERE id = ?",
                            (status, now, 1.0 if status == "succeeded" else row["progress"],
                             json.dumps(outputs) if outputs else None, json.dumps(result) if result else None,
                             *(error or (None, None)), job))
            self._event(job, "status", {"status": status, "progress": 1.0 if status == "succeeded" else row["progress"],
                                        **({"error": {"code": error[0], "message": error[1]}} if error else {})})
            self._finished(row, status, now, (result or {}).get("sampling_steps", 0), agreement)
            return True
        return self._write(write)

    def _finished(self, row, status: str, now: float, steps: int, agreement: float | None) -> None:
        wait = (row["started_at"] or now) - row["created_at"]
        run = now - row["started_at"] if row["started_at"] else None
        self.db.execute("INSERT OR REPLACE INTO finished VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (row["id"], row["mode"], status, wait, run, steps, agreement, now))

    def cancel(self, job: str) -> dict | None:
        """Cancel a queued or running job (its worker stops at its next sampling step)."""
        def write():
            row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job,)).fetchone()
            if row is None or row["status"] not in ACTIVE:
                return
            now = time.time()
            self.db.execute("UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?", (now, job))
            self._event(job, "status", {"status": "cancelled", "progress": row["progress"]})
            self._finished(row, "cancelled", now, 0, None)
        self._write(write)
        return self.get(job)

    def delete(self, job: str) -> None:
        def write():
            self.db.execute("DELETE FROM jobs WHERE id = ?", (job,))
            self.db.execute("DELETE FROM events WHERE job = ?", (job,))
        self._write(write)

    def events(self, job: str, after: int = 0) -> list[dict]:
        rows = self._q("SELECT seq, at, type, data FROM events WHERE job = ? AND seq > ? ORDER BY seq", (job, after))
        return [{"seq": r["seq"], "at": r["at"], "type": r["type"], "data": json.loads(r["data"])} for r in rows]

    # -- uploads
    def add_upload(self, row: dict) -> None:
        keys = ("id", "owner", "file", "filename", "kind", "bytes", "frames", "height", "width", "fps", "created_at")
        sql = f"INSERT INTO uploads ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})"
        self._write(lambda: self.db.execute(sql, tuple(row[k] for k in keys)))

    def upload(self, upload: str) -> dict | None:
        rows = self._q("SELECT * FROM uploads WHERE id = ?", (upload,))
        return dict(rows[0]) if rows else None

    # -- metrics
    def finished_rows(self) -> list[dict]:
        return [dict(r) for r in self._q("SELECT * FROM finished ORDER BY at")]
