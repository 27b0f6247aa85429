"""What a team running kinema watches: Prometheus metrics, each output read by the classifier,
and a canary.

Metrics are computed from the job store when /metrics is scraped (the jobs run in other
processes; the store is the one place that knows them all, and its counts survive restarts):

    kinema_jobs_total{status,mode}          jobs that ended, by how
    kinema_job_seconds{mode}                running time of finished jobs (histogram)
    kinema_queue_wait_seconds               from submission to start (histogram)
    kinema_queue_depth                      jobs waiting
    kinema_sampling_steps_total             sampling steps run
    kinema_output_agreement                 over the last AGREEMENT_WINDOW outputs of procedural
                                            prompts: the fraction of named colours and shapes
                                            the classifier reads back (a broken deploy reads ~0)
    kinema_canary_agreement, kinema_canary_frame_distance, kinema_canary_drift
                                            the last canary against the first (see `canary`)
    kinema_workers_ready                    workers with a model loaded and a fresh heartbeat
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger("kinema.serve")
AGREEMENT_WINDOW = 50
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))
CANARY_PROMPTS = ("a red circle moves to the right", "a blue square moves up", "a green triangle spins",
                  "a yellow star bounces", "a magenta ring moves left", "a cyan circle grows",
                  "a large blue star moves down", "a small red square stays still")
CANARY_SEEDS = tuple(range(1000, 1000 + len(CANARY_PROMPTS)))
CANARY_AGREEMENT = 0.75  # below this share of the first canary's readings: drift
CANARY_DISTANCE = 2.0  # above this frame-feature distance (classifier features, per frame): drift


# ------------------------------------------------------------------ reading outputs

def _word_table() -> dict[str, dict[str, str]]:
    from ..data.synthetic import COLOR_WORDS, SHAPE_WORDS
    return {"colors": {w: k for k, ws in COLOR_WORDS.items() for w in ws},
            "shapes": {w: k for k, ws in SHAPE_WORDS.items() for w in ws}}


def prompt_attributes(prompt: str) -> dict[str, list[str]] | None:
    """The colours and shapes a procedural prompt names ({"colors": [...], "shapes": [...]}), or
    None when it names neither (a prompt about something else: nothing to check)."""
    words = re.findall(r"[a-z]+(?:-[a-z]+)?", prompt.lower())
    out = {}
    for name, table in _word_table().items():
        out[name] = sorted({table[w] for w in words if w in table})
    return out if out["colors"] and out["shapes"] else None


def agreement(reading: dict, named: dict) -> float:
    """The fraction of the named colours and shapes the classifier reads in the video."""
    hits = [v in reading[k]["value"] for k, vs in named.items() for v in vs]
    return float(np.mean(hits)) if hits else float("nan")


class Reader:
    """The classifier, loaded once per worker, reading finished outputs."""

    def __init__(self):
        from ..models.classifier import load_classifier
        self.model = load_classifier()

    def agreement(self, video, prompt: str) -> float | None:
        from ..models.classifier import readings
        named = prompt_attributes(prompt)
        if named is None:
            return None
        return agreement(readings(self.model, [video])[0], named)

    def canary(self, videos: list) -> dict:
        from ..models.classifier import classifier_features, readings
        read = readings(self.model, videos)
        frames = classifier_features(self.model, videos)[1]
        return {"readings": [{k: r[k]["value"] for k in ("colors", "shapes", "motions")} for r in read],
                "frame_features": frames.reshape(-1, frames.shape[-1]).tolist()}


def compare_canary(first: dict, now: dict) -> dict:
    """The share of the first canary's readings the new one repeats, and the Fréchet-style distance
    between their per-frame classifier features (means and spreads: few clips, so no full covariance)."""
    same = [a[k] == b[k] for a, b in zip(first["readings"], now["readings"]) for k in a]
    fa, fb = np.asarray(first["frame_features"]), np.asarray(now["frame_features"])
    distance = float(((fa.mean(0) - fb.mean(0)) ** 2).sum() + ((fa.std(0) - fb.std(0)) ** 2).sum())
    agree = float(np.mean(same)) if same else 0.0
    drift = agree < CANARY_AGREEMENT or distance > CANARY_DISTANCE
    return {"agreement": round(agree, 4), "frame_distance": round(distance, 4), "drift": drift, "at": time.time()}


def record_canary(folder: Path, now: dict) -> dict:
    """Keep the first canary as the reference; compare every later one with it (canary.json)."""
    from ..atomic import atomic_path
    first_path, last_path = folder / "canary_first.json", folder / "canary.json"
    if not first_path.is_file():
        with atomic_path(first_path) as tmp:
            tmp.write_text(json.dumps(now))
        result = {"agreement": 1.0, "frame_distance": 0.0, "drift": False, "at": time.time(), "first": True}
    else:
        result = compare_canary(json.loads(first_path.read_text()), now)
        if result["drift"]:
            log.warning("canary drift: the canary's outputs moved from the first canary's (agreement %.2f, frame "
                        "distance %.3f): a changed model or a broken deploy?", result["agreement"],
                        result["frame_distance"])
    with atomic_path(last_path) as tmp:
        tmp.write_text(json.dumps(result))
    return result


# ------------------------------------------------------------------ /metrics

class Collector:
    """A prometheus_client collector over the job store."""

    def __init__(self, store, folder: Path):
        self.store, self.folder = store, folder

    def describe(self):
        return []

    def collect(self):
        rows = self.store.finished_rows()
        jobs = CounterMetricFamily("kinema_jobs", "Jobs that ended, by status and mode", labels=["status", "mode"])
        counts = {}
        for r in rows:
            counts[(r["status"], r["mode"])] = counts.get((r["status"], r["mode"]), 0) + 1
        for (status, mode), n in sorted(counts.items()):
            jobs.add_metric([status, mode], n)
        yield jobs
        run = HistogramMetricFamily("kinema_job_seconds", "Running time of finished jobs", labels=["mode"])
        for mode in sorted({r["mode"] for r in rows}):
            yield_hist(run, [mode], [r["run_s"] for r in rows if r["mode"] == mode and r["run_s"] is not None])
        yield run
        wait = HistogramMetricFamily("kinema_queue_wait_seconds", "Time from submission to start")
        yield_hist(wait, [], [r["wait_s"] for r in rows if r["wait_s"] is not None and r["run_s"] is not None])
        yield wait
        yield GaugeMetricFamily("kinema_queue_depth", "Jobs waiting", value=self.store.queued())
        yield CounterMetricFamily("kinema_sampling_steps", "Sampling steps run", value=sum(r["steps"] for r in rows))
        recent = [r["agreement"] for r in rows if r["agreement"] is not None][-AGREEMENT_WINDOW:]
        yield GaugeMetricFamily("kinema_output_agreement",
                                "Share of named colours and shapes the classifier reads in recent outputs",
                                value=float(np.mean(recent)) if recent else float("nan"))
        yield GaugeMetricFamily("kinema_workers_ready", "Workers with a model loaded and a fresh heartbeat",
                                value=self.store.workers_ready())
        canary = self.folder / "canary.json"
        if canary.is_file():
            c = json.loads(canary.read_text())
            yield GaugeMetricFamily("kinema_canary_agreement", "The last canary's readings: share equal to the "
                                    "first canary's", value=c["agreement"])
            yield GaugeMetricFamily("kinema_canary_frame_distance", "The last canary's frame-feature distance "
                                    "to the first canary's", value=c["frame_distance"])
            yield GaugeMetricFamily("kinema_canary_drift", "1 when the last canary drifted past the thresholds",
                                    value=float(c["drift"]))


def yield_hist(family: HistogramMetricFamily, labels: list[str], values: list[float]) -> None:
    values = np.asarray(values, float)
    buckets = [(("+Inf" if b == float("inf") else repr(float(b))), int((values <= b).sum())) for b in BUCKETS]
    family.add_metric(labels, buckets, float(values.sum()))
