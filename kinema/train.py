"""One training loop for every component: on a CPU, one GPU, or many under torchrun.

    kinema train autoencoder --preset shapes-64 --out runs/ae
    kinema train transformer --preset shapes-64 --autoencoder runs/ae --out runs/t2v
    torchrun --standalone --nproc-per-node 8 -m kinema train transformer ...   (DDP, detected from the environment)

What differs between components lives in a small Task (model, batch, loss, samples, what to save);
the loop owns the rest: AdamW with warmup + cosine, gradient clipping, EMA, bf16 autocast where
the hardware has it, a JSONL log, a loss-curve PNG, sample grids, and atomic checkpoints that
resume exactly: model, EMA, optimiser, schedule, RNG and data position (batch b reads clips
(b * world + rank) * batch_size + j, so the step number is the data position). A run folder is
locked while it trains (a second training into it is refused), and what a killed run left
behind (half-written checkpoints, a torn last log line) is tidied when the next one starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from . import __version__
from .atomic import atomic_path, discard, recover
from .checkpoint import lock_run, load_state, read_index, read_weights, read_state_meta, save_model, save_state
from .config import TrainConfig, parse_shapes
from .data.source import open_sources
from .diffusion.flow import EMA
from .errors import CheckpointError, InputError, TrainingError, WriteError
from .runtime import autocast
from .tasks import TASKS
from .viz import line_plot


# ------------------------------------------------------------------ processes and devices

def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world, device). torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; otherwise one process."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio at max_steps."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# ------------------------------------------------------------------ training state <-> tensors

def trained_state(model) -> dict[str, torch.Tensor]:
    """What training changes: the model's state without its frozen parameters (a LoRA fine-tune's
    base model, which is read again from its own folder), buffers included."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _pack(model, ema: EMA, opt, gen: torch.Generator, step: int, elapsed: float, cfg: TrainConfig):
    tensors = {f"model.{k}": v.detach().clone() for k, v in trained_state(model).items()}  # copies: EMA is swapped in next
    tensors.update({f"ema.{k}": v for k, v in ema.shadow.items()})
    opt_state = opt.state_dict()
    for idx, st in opt_state["state"].items():
        tensors.update({f"opt.{idx}.{k}": torch.as_tensor(v) for k, v in st.items()})
    tensors["rng.torch"] = gen.get_state()
    meta = {"step": step, "elapsed_s": elapsed, "config": cfg.to_dict(), "kinema_version": __version__,
            "ema_updates": ema.num_updates, "param_groups": opt_state["param_groups"]}
    return tensors, meta


def stored_config(out: str | Path) -> TrainConfig | None:
    """The recipe a run in `out` was checkpointed with (None if there is no checkpoint): resuming
    continues that recipe, not whatever the preset says today."""
    folder = Path(out) / "model" / "train_state"
    if not (folder / "state.json").is_file():
        return None
    meta = read_state_meta(folder)
    try:
        return TrainConfig.from_dict(meta["config"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{folder}: corrupt training state ({e}); the run cannot be resumed") from e


def _check_state(tensors: dict, meta: dict, model) -> None:
    """Refuse a training state that cannot continue this model exactly, before touching anything:
    missing entries, or tensors of another shape than the model's (a hand-edited or foreign state)."""
    missing = [k for k in ("step", "elapsed_s", "ema_updates", "param_groups") if k not in meta]
    missing += [k for k in ("rng.torch",) if k not in tensors]
    if missing:
        raise CheckpointError(f"training state lacks {', '.join(missing)}")
    if not isinstance(meta["step"], int) or meta["step"] < 0:
        raise CheckpointError(f"training state has step {meta['step']!r}, not a count of steps")
    own = trained_state(model)
    params = trainable(model)
    for prefix, expected in (("model.", own), ("ema.", {n: p for n, p in params.items() if p.is_floating_point()})):
        got = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        wrong = sorted(k for k in got.keys() | expected.keys()
                       if k not in got or k not in expected or got[k].shape != expected[k].shape)
        if wrong:
            raise CheckpointError(f"training state's {prefix[:-1]} tensors do not fit the model "
                                  f"({len(wrong)} differ, e.g. {wrong[0]})")
    order = list(params.values())
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            if not idx.isdigit() or int(idx) >= len(order) or (v.ndim and v.shape != order[int(idx)].shape):
                raise CheckpointError(f"training state's optimiser entry {k} does not fit the model")


def _unpack(tensors: dict, meta: dict, model, ema: EMA, opt, gen: torch.Generator) -> tuple[int, float]:
    try:
        _check_state(tensors, meta, model)
        return _load_state(tensors, meta, model, ema, opt, gen)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
        raise CheckpointError(f"training state does not fit this run ({str(e).splitlines()[0]})") from e


def _load_state(tensors: dict, meta: dict, model, ema: EMA, opt, gen: torch.Generator) -> tuple[int, float]:
    # every trained tensor, checked by _check_state; frozen ones (a LoRA's base) stay as loaded
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    ema.load_state_dict({"decay": ema.decay, "warmup": ema.warmup, "num_updates": meta["ema_updates"],
                         "shadow": {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    gen.set_state(tensors["rng.torch"])
    return int(meta["step"]), float(meta["elapsed_s"])


# ------------------------------------------------------------------ the loop

def init_from(model: torch.nn.Module, path: str | Path, component: str) -> list[str]:
    """Load the weights of `component` in the model folder (or run, or the component's own folder,
    e.g. kinema/assets/classifier) at `path` into `model`. Parts the source lacks keep their fresh
    initialisation (a new head, e.g. another classifier readout) and are returned by name; parts
    only the source has are dropped. A tensor of the same name but another shape means other
    sizes: an error."""
    from .pipeline import model_folder

    folder = Path(path) if (Path(path) / "model.safetensors").is_file() else model_folder(path) / component
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"init from {path}: no {component} there ({weights} is missing)")
    source = read_weights(weights)
    own = model.state_dict()
    match = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    other = [k for k in source if k in own and k not in match]
    if other or not match:
        raise CheckpointError(f"init from {path}: its {component} has other sizes ({len(other)} tensors differ, "
                              f"e.g. {other[0] if other else 'no name in common'})")
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in match.items()}})
    return sorted({k.split(".")[0] for k in own if k not in match})


def train(component: str, cfg: TrainConfig | None, out: str | Path, *, max_steps: int | None = None,
          max_minutes: float | None = None, resume: bool = False, autoencoder: str | Path | None = None,
          progress: bool = True, cache: str | Path | None = None) -> dict:
    """Train `component` with `cfg` into the run folder `out`: out/model (the checkpoint, a model
    folder that `kinema.load` reads), out/log.jsonl, out/loss.png, out/samples/. Returns a summary.
    Stops at `max_steps` (default cfg.max_steps) or after `max_minutes`, checkpointing either way.
    Resuming with cfg None continues the run's own recipe; a cfg that differs from it is used, and
    the settings it changes are listed (on stderr, and as "changed" in the summary). `cache`: where
    latents and text states of folder data are kept between runs (kinema.data.cache; default
    $KINEMA_CACHE or ~/.cache/kinema).
    Under torchrun, a process group this call creates is also destroyed by it: left to interpreter
    shutdown, gloo's teardown can abort a rank whose peer has already exited."""
    created = int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized()
    out = Path(out)
    # rank 0 (the one writer) holds the run folder's lock; torchrun sets RANK before any process group
    owner = int(os.environ.get("RANK", 0)) == 0
    fresh = owner and not out.exists()
    try:
        with lock_run(out) if owner else contextlib.nullcontext():
            if owner:
                tidy_run(out)
            return _train(component, cfg, out, max_steps=max_steps, max_minutes=max_minutes, resume=resume,
                          autoencoder=autoencoder, progress=progress, cache=cache)
    except BaseException:
        if fresh and {p.name for p in out.iterdir()} <= {".lock"}:  # failed before writing anything: no trace
            discard(out)
        raise
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def tidy_run(out: Path) -> list[Path]:
    """What killed writes left in a run folder: the checkpoint put back if a kill caught it set
    aside, and every half-written `.NAME.*.part` / `.NAME.*.old` removed (up to a full checkpoint
    of disk each). Only the lock holder may call this."""
    removed = recover(out / "model")
    others = [p for pattern in (".*.part", ".*.old") for p in out.rglob(pattern)]  # log, samples, latent cache
    for p in sorted(others, key=lambda p: len(p.parts)):  # a folder before what was inside it
        discard(p)
    return removed + others


def _train(component: str, cfg: TrainConfig | None, out: Path, *, max_steps: int | None, max_minutes: float | None,
           resume: bool, autoencoder: str | Path | None, progress: bool, cache: str | Path | None = None) -> dict:
    stored = stored_config(out) if resume else None
    if stored is not None and stored.component != component:
        raise InputError(f"{out} is a run of the {stored.component}, not the {component}")
    if cfg is None:
        if stored is None:
            raise CheckpointError(f"{out}: nothing to resume (no model/train_state folder), and no config given")
        cfg = stored
    old = stored.to_dict() if stored is not None else {}
    changed = {k: [old[k], v] for k, v in cfg.to_dict().items() if k in old and old[k] != v}
    rank, world, device = setup_distributed()
    main = rank == 0
    torch.manual_seed(cfg.seed)
    shapes = parse_shapes(cfg.shapes, (cfg.frames, cfg.height, cfg.width), cfg.stride()) \
        if component != "classifier" else [(cfg.frames, cfg.height, cfg.width)]
    data = open_sources(cfg.data, seed=cfg.data_seed, fps=cfg.fps, shapes=shapes, trigger=cfg.trigger,
                        windows=cfg.windows, progress=main and progress)
    task = TASKS[component](cfg, data, device, autoencoder=autoencoder, cache=cache, progress=main and progress)
    model = task.model
    fresh: list[str] = []
    if cfg.init:  # fine-tuning: weights from another model of the same sizes (a resume overwrites what it trained)
        fresh = init_from(model, cfg.init, component)
        if fresh and rank == 0 and progress and not resume:
            print(f"init from {cfg.init}: new (freshly initialised) parts: {', '.join(fresh)}", file=sys.stderr)
    model = task.prepare(model).to(device)  # e.g. a LoRA attached: only its weights train
    ema = EMA(model, decay=cfg.ema_decay)
    params = list(trainable(model).values())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    step, elapsed = 0, 0.0
    model_dir = out / "model"  # the checkpoint: replaced atomically as a whole; logs and samples live beside it
    if (model_dir / "train_state").is_dir() and not resume:
        raise InputError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    if resume:
        if not (model_dir / "train_state").is_dir():
            raise CheckpointError(f"{out}: nothing to resume (no model/train_state folder)")
        before = read_index(model_dir).get("recipe", {}).get("data_identity")
        if before is not None and before != data.identity() and main:
            warnings.warn(f"the training data changed since {out} was last saved (files added, removed or edited): "
                          f"the resumed run reads other clips than an uninterrupted one would have")
        step, elapsed = _unpack(*load_state(model_dir / "train_state"), model, ema, opt, gen)
        _truncate_log(out / "log.jsonl", step)  # rows logged after the checkpoint will be redone
    task.after_resume(out)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    forward = torch.compile(ddp) if cfg.compile else ddp  # same parameters; checkpoints, EMA and samples use `model`
    stop_at = min(max_steps if max_steps is not None else cfg.max_steps, cfg.max_steps)
    if max_steps is not None and max_steps > cfg.max_steps and main and progress:
        print(f"note: --max-steps {max_steps} is past the recipe's max_steps {cfg.max_steps} (the length of its "
              f"learning-rate schedule), so training stops at {cfg.max_steps}; --set max_steps={max_steps} "
              f"trains longer", file=sys.stderr)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    log_path, t_start = out / "log.jsonl", time.monotonic()
    last_ckpt, last_good = time.monotonic(), step

    def checkpoint():
        nonlocal last_ckpt, last_good
        if main:
            with ema.applied_to(model):  # first, as it may set buffers (the autoencoder's latent statistics)
                components = task.components(model)
            # the state holds those buffers too, so a run resumed from here has what an uninterrupted one has
            tensors, meta = _pack(model, ema, opt, gen, step, elapsed + time.monotonic() - t_start, cfg)
            index = {"recipe": {"component": component, "steps": step, "config": cfg.to_dict(),
                                "data_identity": data.identity(), "world_size": world,
                                "params": sum(p.numel() for p in model.parameters()),
                                "trained_params": sum(p.numel() for p in params)}, **task.index()}
            try:
                with ema.applied_to(model):
                    save_model(model_dir, components, index,
                               extra={**task.extra(model, step), "train_state": lambda d: save_state(d, tensors, meta)})
                _plot_log(log_path, out / "loss.png")
            except WriteError as e:
                raise WriteError(f"{e}; stopped at step {step}, the last checkpoint (step {last_good}) is "
                                 f"kept in {model_dir}") from e
        last_ckpt, last_good = time.monotonic(), step

    def snapshot():
        """A lean copy of the checkpoint just written, for learning curves; one a kill cut short is made again."""
        folder = out / "snapshots" / f"step_{step:06d}"
        index = read_index(model_dir) if main else {}
        if main and index.get("components") and "lora" not in index and not (folder / "model_index.json").is_file():
            from .checkpoint import export_model
            shutil.rmtree(folder, ignore_errors=True)
            folder.parent.mkdir(parents=True, exist_ok=True)
            export_model(model_dir, folder, note={"snapshot": {"step": step, "train_seconds": round(
                elapsed + time.monotonic() - t_start, 1)}})

    if cfg.snapshot_every and step and step % cfg.snapshot_every == 0:
        snapshot()  # resumed at a snapshot step: the copy may be missing
    if changed and main and progress:
        print(f"resuming {out} with changed settings: "
              + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()), file=sys.stderr)
    bar = tqdm(total=stop_at, initial=step, desc=f"train {component}", unit="step", disable=not (main and progress))
    logs: dict[str, float] = {}
    while step < stop_at:
        if max_minutes is not None and _time_is_up(t_start, max_minutes, device):
            break
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        t0 = time.perf_counter()
        batch = task.batch(step, rank, world)
        with autocast(device):
            loss, parts = task.loss(forward, batch, gen)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {loss.item()} at step {step}; stopped, the last good checkpoint "
                                f"(step {last_good}) is kept in {out}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        ema.update(model)
        step += 1
        bar.update(1)
        for k, v in {"loss": loss.item(), "grad_norm": float(grad_norm), **parts}.items():
            logs[k] = logs.get(k, 0.0) + v
        if main and step % cfg.log_every == 0:
            row = {"step": step, "lr": opt.param_groups[0]["lr"], "sec_per_step": round(time.perf_counter() - t0, 4),
                   **{k: v / cfg.log_every for k, v in logs.items()}}
            try:
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
            except OSError as e:
                raise WriteError(f"cannot write {log_path}: {e.strerror or e}; stopped at step {step}, the last "
                                 f"checkpoint (step {last_good}) is kept in {model_dir}") from e
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            logs = {}
        if main and step % cfg.sample_every == 0:
            with ema.applied_to(model), torch.no_grad():
                task.sample(model, out / "samples" / f"step_{step:06d}.png")
        snap = cfg.snapshot_every and step % cfg.snapshot_every == 0
        if snap or step % cfg.checkpoint_every == 0 or time.monotonic() - last_ckpt > 60 * cfg.checkpoint_minutes:
            checkpoint()
        if snap:
            snapshot()
    bar.close()
    if last_good != step or not (model_dir / "train_state").is_dir():
        checkpoint()
    if dist.is_initialized():
        dist.barrier()  # rank 0 has written the checkpoint
    return {"out": str(out), "model": str(model_dir), "component": component, "step": step, "max_steps": cfg.max_steps,
            "params": sum(p.numel() for p in model.parameters()), "trained_params": sum(p.numel() for p in params),
            "seconds": round(time.monotonic() - t_start, 1),
            "device": str(device), "world_size": world, "rank": rank, "changed": changed, "fresh": fresh,
            **task.stats()}


def _time_is_up(t_start: float, max_minutes: float, device: torch.device) -> bool:
    """Rank 0's clock decides for every rank, so all stop at the same step (one that stopped alone
    would leave the others waiting in DDP's all-reduce)."""
    up = torch.tensor([time.monotonic() - t_start > 60 * max_minutes], dtype=torch.uint8, device=device)
    if dist.is_initialized():
        dist.broadcast(up, src=0)
    return bool(up.item())


def _plot_log(log_path: Path, png: Path) -> None:
    rows = read_log(log_path)
    if rows:
        line_plot([r["step"] for r in rows], {"loss": [r["loss"] for r in rows]}, png, title="training loss",
                  log_y=True)


def read_log(log_path: Path) -> list[dict]:
    """The rows of log.jsonl. A line a kill cut short (or any other unreadable line) is skipped
    with a warning: the rows around it are still good."""
    if not log_path.is_file():
        return []
    rows, bad = [], 0
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
            if isinstance(row, dict) and isinstance(row.get("step"), int) and isinstance(row.get("loss"), (int, float)):
                rows.append(row)
                continue
        except ValueError:
            pass
        bad += line.strip() != ""
    if bad:
        warnings.warn(f"{log_path}: skipped {bad} unreadable line(s) (a run killed while logging)")
    return rows


def _truncate_log(log_path: Path, step: int) -> None:
    """Keep the rows up to the checkpoint's step: the ones after it will be logged again."""
    if log_path.is_file():
        rows = [r for r in read_log(log_path) if r["step"] <= step]
        with atomic_path(log_path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
