"""The HTTP API (FastAPI): video jobs in the shape of the OpenAI videos API / Runway tasks /
Replicate predictions, uploads, server-sent progress, health and metrics, and the studio page.

    POST   /v1/videos                 a job (JSON body: VideoRequest) -> 202 with the job
    GET    /v1/videos                 the caller's jobs, newest first (?limit=&after=ID)
    GET    /v1/videos/{id}            one job
    GET    /v1/videos/{id}/content    ?variant=video|sheet|thumbnail: a finished job's file
    GET    /v1/videos/{id}/events     server-sent events: one a sampling step, one a status change
    DELETE /v1/videos/{id}            cancel a queued / running job, delete a finished one and its files
    POST   /v1/uploads                an image or video (multipart `file`), decoded before it is kept
    GET    /v1/adapters               the LoRA adapters a request may name
    GET    /healthz /readyz /metrics  liveness, a worker with a model loaded, Prometheus
    GET    /                          the studio (static/)

Files are found by ids the server made, never by a path from the client. With API keys, every
route but /healthz, /readyz and / wants `Authorization: Bearer KEY` (or `X-API-Key`), and a job
or upload is visible only to the key that made it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from ..errors import KinemaError
from ..jobs import batch_key, plan
from ..limits import MAX_PROMPT_CHARS, MAX_SEED
from ..video import probe, read_video
from .store import DONE, Store, new_id
from .worker import OUTPUT_FILES, error_code, output_folder

STATIC = Path(__file__).resolve().parent / "static"
ID = re.compile(r"^(video|upload)_[0-9a-f]{24}$")
UPLOAD_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".png", ".jpg", ".jpeg", ".webp", ".bmp"}
MEDIA = {"video": "video/mp4", "sheet": "image/png", "thumbnail": "image/png"}
SEED_RANGE = 2**31  # drawn seeds: small enough to type back


@dataclass
class Limits:
    """What one request may ask (the server's own caps, below kinema's absolute ones)."""
    max_frames: int = 129
    max_side: int = 512
    max_seconds: float = 30.0
    max_steps: int = 100
    max_queue: int = 64
    max_upload_mb: float = 64.0
    max_upload_frames: int = 1024
    max_batch: int = 8


@dataclass
class Settings:
    data: Path
    model: str | None = None
    keys: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    adapters: Path | None = None
    canary_every: float = 0.0


class LoraRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
    scale: float = Field(1.0, ge=0, le=10)


class VideoRequest(BaseModel):
    """A job: what `kinema generate / extend / interpolate / edit` take, with inputs by upload id."""
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    mode: Literal["generate", "extend", "interpolate", "edit"] = "generate"
    frames: int | None = Field(None, ge=1)
    seconds: float | None = Field(None, gt=0)
    height: int | None = Field(None, ge=8)
    width: int | None = Field(None, ge=8)
    fps: float | None = Field(None, gt=0)
    steps: int | None = Field(None, ge=1)
    guidance: float | None = Field(None, ge=0)
    guidance_interval: tuple[float, float] | None = None
    sampler: Literal["euler", "heun"] | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    strength: float | None = Field(None, ge=0, le=1)
    fit: Literal["crop", "pad", "stretch"] | None = None
    context: int | None = Field(None, ge=1)
    image: str | None = None
    last_image: str | None = None
    keyframes: dict[int, str] | None = None
    video: str | None = None
    first: str | None = None
    last: str | None = None
    mask: str | None = None
    loras: list[LoraRef] = Field(default_factory=list, max_length=4)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def owner_of(key: str | None) -> str:
    return "public" if key is None else hashlib.sha256(key.encode()).hexdigest()[:16]


def create_app(settings: Settings) -> FastAPI:
    data = Path(settings.data)
    store = Store(data)
    limits = settings.limits
    app = FastAPI(title="kinema", version=_version(),
                  description="Video generation jobs: text-to-video, image-to-video, extend, interpolate, edit.")
    app.state.store, app.state.settings = store, settings

    @app.exception_handler(ApiError)
    async def api_error(_, e: ApiError):
        return JSONResponse({"error": {"code": e.code, "message": e.message}}, status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_, e: RequestValidationError):
        first = e.errors()[0]
        where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        code = "input." + where[0] if where else "input"
        message = f"{'.'.join(where) or 'request'}: {first.get('msg', 'invalid')}"
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=400)

    def caller(request: Request) -> str:
        """The owner of the calling key (the one owner without keys); 401 for a missing or wrong key."""
        if not settings.keys:
            return owner_of(None)
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        for key in settings.keys:
            if given is not None and hmac.compare_digest(given.encode(), key.encode()):
                return owner_of(key)
        raise ApiError(401, "auth", "a valid API key is needed: Authorization: Bearer KEY",
                       {"WWW-Authenticate": "Bearer"})

    def own_job(request: Request, job_id: str) -> dict:
        owner = caller(request)
        job = store.get(job_id) if ID.match(job_id) and job_id.startswith("video_") else None
        if job is None or job["owner"] != owner or job["kind"] != "job":
            raise ApiError(404, "not_found", f"no video job {job_id[:64]!r}")
        return job

    def public(job: dict) -> dict:
        request = json.loads(job["request"])
        done = job["status"] == "succeeded"
        base = f"/v1/videos/{job['id']}/content"
        return {"id": job["id"], "object": "video", "status": job["status"], "progress": job["progress"],
                "mode": job["mode"], "created_at": job["created_at"], "started_at": job["started_at"],
                "finished_at": job["finished_at"], "seed": job["seed"], "request": request,
                "error": {"code": job["error_code"], "message": job["error_message"]} if job["error_code"] else None,
                "outputs": {k: f"{base}?variant={k}" for k in OUTPUT_FILES} if done else None,
                "result": json.loads(job["result"]) if job["result"] else None}

    # -- jobs
    @app.post("/v1/videos", status_code=202, summary="Create a video job")
    def create(body: VideoRequest, request: Request):
        owner = caller(request)
        req = body.model_dump(exclude_none=True)
        _caps(req, limits)
        inputs, paths = {}, {}  # by upload id (stored), and as files (checked now)
        for name in ("image", "last_image", "video", "first", "last", "mask"):
            if name in req:
                row = _own_upload(store, req.pop(name), owner, name)
                inputs[name], paths[name] = row["id"], str(data / "uploads" / row["file"])
        if "keyframes" in req:
            rows = {int(i): _own_upload(store, u, owner, f"keyframes.{i}") for i, u in req.pop("keyframes").items()}
            inputs["keyframes"] = {i: r["id"] for i, r in rows.items()}
            paths["keyframes"] = {i: str(data / "uploads" / r["file"]) for i, r in rows.items()}
        for lora in req.get("loras", []):
            if settings.adapters is None or lora["name"] not in _adapters(settings.adapters):
                raise ApiError(400, "input.loras", f"no adapter named {lora['name']!r} on this server "
                                                   f"(GET /v1/adapters lists them)")
        seed = req.pop("seed", None)
        seed = secrets.randbelow(SEED_RANGE) if seed is None else seed
        check = {**req, "inputs": paths, "seed": seed}
        try:  # the whole request checked against the model now, not after it waited in the queue
            plan({**check, "loras": []}, settings.model)
        except KinemaError as e:
            raise ApiError(400, error_code(e), str(e))
        stored = {**req, "inputs": inputs}
        job = store.add(owner, stored, seed, batch_key({**check, "inputs": inputs, "seed": None}),
                        max_queued=limits.max_queue)
        if job is None:
            raise ApiError(429, "queue_full", f"{limits.max_queue} jobs are waiting; try again shortly",
                           {"Retry-After": "5"})
        return public(job)

    @app.get("/v1/videos", summary="List your jobs, newest first")
    def listing(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None):
        rows = store.list(caller(request), limit + 1, after if after and ID.match(after) else None)
        return {"object": "list", "data": [public(r) for r in rows[:limit]], "has_more": len(rows) > limit,
                "last_id": rows[:limit][-1]["id"] if rows else None}

    @app.get("/v1/videos/{job_id}", summary="One job")
    def one(job_id: str, request: Request):
        return public(own_job(request, job_id))

    @app.delete("/v1/videos/{job_id}", summary="Cancel a waiting or running job; delete a finished one")
    def delete(job_id: str, request: Request):
        job = own_job(request, job_id)
        if job["status"] not in DONE:
            return public(store.cancel(job_id))
        shutil.rmtree(output_folder(data, job_id), ignore_errors=True)
        store.delete(job_id)
        return {"id": job_id, "object": "video", "deleted": True}

    @app.get("/v1/videos/{job_id}/content", summary="A finished job's video, contact sheet or thumbnail")
    def content(job_id: str, request: Request, variant: Literal["video", "sheet", "thumbnail"] = "video"):
        job = own_job(request, job_id)
        if job["status"] != "succeeded":
            raise ApiError(409, "not_ready", f"job {job_id} is {job['status']}: it has no content")
        path = _safe_file(output_folder(data, job_id), OUTPUT_FILES[variant])
        return FileResponse(path, media_type=MEDIA[variant], filename=f"{job_id}-{OUTPUT_FILES[variant]}",
                            content_disposition_type="inline")

    @app.get("/v1/videos/{job_id}/events", summary="Server-sent events: progress a step, status changes")
    async def events(job_id: str, request: Request):
        own_job(request, job_id)
        try:
            after = int(request.headers.get("last-event-id", "0"))
        except ValueError:
            after = 0

        async def stream():
            nonlocal after
            quiet = time.monotonic()
            while True:
                if await request.is_disconnected():
                    return
                rows = store.events(job_id, after)
                for e in rows:
                    after = e["seq"]
                    data = json.dumps({**e["data"], "at": round(e["at"], 3)})  # when it happened (server clock)
                    yield f"id: {e['seq']}\nevent: {e['type']}\ndata: {data}\n\n"
                    if e["type"] == "status" and e["data"].get("status") in DONE:
                        return
                if rows:
                    quiet = time.monotonic()
                elif store.get(job_id) is None:
                    return
                elif time.monotonic() - quiet > 15:
                    quiet = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.05)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- uploads
    @app.post("/v1/uploads", status_code=201, summary="Upload an image or video (decoded before it is kept)")
    def upload(request: Request, file: UploadFile = File(...)):
        owner = caller(request)
        suffix = Path(file.filename or "").suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise ApiError(400, "input.file", f"{(file.filename or 'the file')[:100]!r}: not a video or image kinema "
                                              f"takes ({', '.join(sorted(UPLOAD_SUFFIXES))})")
        folder = data / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        upload_id = new_id("upload")
        tmp = folder / f".{upload_id}.part{suffix}"
        cap = int(limits.max_upload_mb * 2**20)
        size = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := file.file.read(2**20):
                    size += len(chunk)
                    if size > cap:
                        raise ApiError(413, "input.file", f"uploads are capped at {limits.max_upload_mb:g} MB")
                    out.write(chunk)
            if size == 0:
                raise ApiError(400, "input.file", "the upload is empty")
            try:  # decoded whole, at a thumbnail's size (memory stays small), under a decoding cap
                height, width = probe(tmp)
                v = read_video(tmp, height=32, width=32, fit="stretch", max_frames=limits.max_upload_frames,
                               max_decoded=2**30)
            except KinemaError as e:
                raise ApiError(400, "input.file", str(e).replace(str(tmp), file.filename or "the upload"))
            final = folder / f"{upload_id}{suffix}"
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        row = {"id": upload_id, "owner": owner, "file": final.name, "filename": (file.filename or "")[:200],
               "kind": "image" if v.num_frames == 1 else "video", "bytes": size, "frames": v.num_frames,
               "height": height, "width": width, "fps": v.fps, "created_at": time.time()}
        store.add_upload(row)
        return {k: row[k] for k in ("id", "filename", "kind", "bytes", "frames", "height", "width", "fps",
                                    "created_at")} | {"object": "upload"}

    @app.get("/v1/adapters", summary="LoRA adapters a request may name")
    def adapters(request: Request):
        caller(request)
        return {"object": "list", "data": [{"name": n} for n in _adapters(settings.adapters)]}

    # -- health, metrics, the studio
    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz():
        ready = store.workers_ready()
        return JSONResponse({"status": "ready" if ready else "starting", "workers": ready},
                            status_code=200 if ready else 503)

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from .monitor import Collector
    registry = CollectorRegistry()
    registry.register(Collector(store, data))

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request):
        caller(request)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/limits", summary="What one request may ask of this server")
    def get_limits():
        return {**limits.__dict__, "keys": bool(settings.keys)}

    @app.get("/", include_in_schema=False)
    def studio():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _version() -> str:
    from .. import __version__
    return __version__


def _caps(req: dict, limits: Limits) -> None:
    for name, cap in (("frames", limits.max_frames), ("height", limits.max_side), ("width", limits.max_side),
                      ("seconds", limits.max_seconds), ("steps", limits.max_steps)):
        if req.get(name) is not None and req[name] > cap:
            raise ApiError(400, f"input.{name}", f"{name}={req[name]} is over this server's cap of {cap}")


def _own_upload(store: Store, upload_id, owner: str, name: str) -> dict:
    """The caller's upload `upload_id` (its row), or a 400 naming the field."""
    row = store.upload(upload_id) if isinstance(upload_id, str) and ID.match(upload_id) else None
    if row is None or row["owner"] != owner:
        raise ApiError(400, f"input.{name}", f"{name}: no upload {str(upload_id)[:64]!r} (POST /v1/uploads first)")
    return row


def _adapters(folder: Path | None) -> list[str]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                  and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", p.name))


def _safe_file(folder: Path, name: str) -> Path:
    """A regular file named `name` (a server constant) in `folder`, not reached through a link."""
    path = folder / name
    try:
        st = os.lstat(path)
        folder_st = os.lstat(folder)
    except OSError:
        raise ApiError(404, "not_found", "the file is gone")
    if not stat.S_ISREG(st.st_mode) or not stat.S_ISDIR(folder_st.st_mode):
        raise ApiError(404, "not_found", "the file is gone")
    return path
