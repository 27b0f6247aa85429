"""The video classifier: reads every attribute of a procedural clip, and embeds any video.

A small (2+1)D residual network (Tran et al., 2018). Its input is the clip and its frame
differences (a cheap motion stream: a moving edge lights up there, a still background does not);
a strided 3x4x4 stem halves the frame, then each block is a 3x3 spatial convolution (strided to
halve the size again, except the last) and a 3-tap temporal convolution, so motion is seen at
every scale. The video embedding (`features`) pools the last block over (T, H, W) both ways: the
mean (what the whole clip looks like) and the max (whether something is anywhere, even a small
object: a mean dilutes a 5-pixel star into the background). kinema's Fréchet distances are
computed on it. The attributes are read two ways:

- sets (a clip holds 1-3 objects): which colours, shapes, sizes, motions and speeds are present,
  one probability per value. `readout` chooses how they are read from the last block (4x4 cells
  per frame for 64x64 clips):
  - "cells" (multiple-instance learning): a small MLP scores every value at every (t, h, w) cell,
    given the cell's features and the clip's mean (the camera's motion is context for an
    object's), and a value is present where its best cell says so (max over cells);
  - "objects" (`ObjectReadout`): a few learned queries attend to the cells, each reads one object
    whole (is there one; its colour, shape, size, motion, speed), trained with a one-to-one
    matching to the clip's objects. Attributes stay bound to their object, so `classify` can say
    which object does what, and a still object among moving ones is found as an object;
  - "pooled": one head per attribute on the embedding. With pooled heads, clips of 2-3 objects
    had their motion set right 4-32% of the time against 77-97% for one object (README): two
    objects' motions blur together in one vector;
- single answers: the camera move, the number of objects, the background kind: one linear
  softmax head each on the embedding.

Any video is brought to the classifier's input first (`prepare`): resampled to its fps, resized
to its size, its first `frames` frames taken (a shorter clip repeats its last frame).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.synthetic import BACKGROUNDS, CAMERAS, COLORS, MOTIONS, SHAPES, SIZES, SPEEDS
from ..errors import CheckpointError, InputError
from . import flag, one_of, real, whole, whole_list
from ..video import Video

# attribute -> (kind, values); "set": several may be present, "one": exactly one is.
# Sets hold at least one value, except `speeds`: a clip whose objects all stay still has none.
ATTRIBUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "colors": ("set", tuple(COLORS)),
    "shapes": ("set", SHAPES),
    "sizes": ("set", tuple(SIZES)),
    "motions": ("set", MOTIONS),
    "speeds": ("set", SPEEDS),
    "camera": ("one", CAMERAS),
    "count": ("one", ("1", "2", "3")),
    "background": ("one", BACKGROUNDS),
}
MAY_BE_EMPTY = {"speeds"}
READOUTS = ("objects", "cells", "pooled")
# What an object query reads: set attribute -> (object key, classes). A still object's speed is "none".
OBJECT_ATTRIBUTES = {"colors": ("color", tuple(COLORS)), "shapes": ("shape", SHAPES), "sizes": ("size", tuple(SIZES)),
                     "motions": ("motion", MOTIONS), "speeds": ("speed", (*SPEEDS, "none"))}


@dataclass
class ClassifierConfig:
    frames: int = 17
    size: int = 64
    fps: float = 8.0
    widths: list = field(default_factory=lambda: [32, 64, 128, 256])  # one stage each, halving H and W but the last
    groups: int = 8
    differences: bool = True  # also feed the frame differences (motion stream)
    max_pool: bool = True  # embedding = [mean, max] over (T, H, W), else the mean alone
    # how the set attributes are read: "objects" (object queries), "cells" (per cell, max over
    # cells) or "pooled" (from the embedding); see the module docstring
    readout: str = "cells"
    queries: int = 4  # object queries ("objects" readout): at least the most objects a clip holds

    @property
    def stride(self) -> int:
        """How much the last block is smaller than the input, per side."""
        return 2 ** (len(self.widths) + (1 if self.readout == "pooled" else 0))

    def __post_init__(self):
        o = "classifier"
        whole(o, "frames", self.frames, 2, 1024)
        whole(o, "size", self.size, 8, 1024)
        real(o, "fps", self.fps, 0, 240, open_lo=True)
        self.widths = whole_list(o, "widths", self.widths, 1, 4096, range(1, 7))
        whole(o, "groups", self.groups, 1, 4096)
        flag(o, "differences", self.differences)
        flag(o, "max_pool", self.max_pool)
        one_of(o, "readout", self.readout, READOUTS)
        whole(o, "queries", self.queries, 1, 64)
        if self.readout == "objects" and self.queries < 3:
            raise InputError(f"the object readout needs at least 3 queries (clips hold up to 3 objects), got {self.queries}")
        if self.size % self.stride:
            raise InputError(f"classifier size must be a multiple of {self.stride} ({len(self.widths)} stages halve "
                             f"it), got {self.size}")
        if any(w % self.groups for w in self.widths):
            raise InputError(f"classifier widths {self.widths} must all be multiples of groups ({self.groups})")
        if self.readout == "objects" and self.widths[-1] % 4:
            raise InputError(f"the object readout's 4 attention heads need the last width to be a multiple of 4, "
                             f"got {self.widths[-1]}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown classifier settings: {', '.join(sorted(unknown))}")
        return cls(**d)


class Block(nn.Module):
    """(2+1)D residual block: spatial 3x3 (stride 2 or 1), temporal 3, GroupNorm, SiLU."""

    def __init__(self, cin: int, cout: int, groups: int, stride: int = 2):
        super().__init__()
        self.spatial = nn.Conv3d(cin, cout, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1))
        self.norm1 = nn.GroupNorm(groups, cout)
        self.temporal = nn.Conv3d(cout, cout, (3, 1, 1), padding=(1, 0, 0))
        self.norm2 = nn.GroupNorm(groups, cout)
        self.skip = nn.Conv3d(cin, cout, 1, stride=(1, stride, stride))

    def forward(self, x):
        h = F.silu(self.norm1(self.spatial(x)))
        return F.silu(self.norm2(self.temporal(h)) + self.skip(x))


class ObjectReadout(nn.Module):
    """Object queries (DETR, Carion et al., 2020): `queries` learned vectors attend to the last
    block's cells (with learned t, y, x position embeddings) through a small transformer decoder;
    each query answers "is there an object" and, if so, its colour, shape, size, motion and speed.
    Trained with a one-to-one (Hungarian) matching of queries to the clip's objects (`object_loss`),
    so one query reads one object: its motion is bound to its colour and shape, and a still object
    among moving ones is an object whose motion is "still", not the absence of movement."""

    CLASSES = [len(values) for _, values in OBJECT_ATTRIBUTES.values()]

    def __init__(self, dim: int, grid: tuple[int, int], queries: int, layers: int = 2, heads: int = 4):
        super().__init__()
        frames, side = grid
        self.pos_t, self.pos_y, self.pos_x = (nn.Parameter(torch.randn(n, dim) * 0.02) for n in (frames, side, side))
        self.queries = nn.Parameter(torch.randn(queries, dim) * 0.02)
        layer = nn.TransformerDecoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1 + sum(self.CLASSES)))

    def forward(self, cells: torch.Tensor) -> torch.Tensor:
        """Cells (B, T*h*w, C) -> per query [object logit, class logits...] (B, queries, 1 + classes)."""
        pos = (self.pos_t[:, None, None] + self.pos_y[None, :, None] + self.pos_x[None, None]).flatten(0, 2)
        q = self.queries.expand(cells.shape[0], -1, -1)
        return self.head(self.decoder(q, cells + pos))

    @classmethod
    def split(cls, q: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Object logits (B, K) and class log-probabilities per attribute [(B, K, n)]."""
        return q[..., 0], [z.log_softmax(-1) for z in q[..., 1:].split(cls.CLASSES, -1)]

    @classmethod
    def set_logits(cls, q: torch.Tensor) -> dict[str, torch.Tensor]:
        """The set attributes as logits of "value v is present": P = 1 - prod over queries of
        (1 - P(object) P(class v)), so `accuracy` and `predict` read them like the other readouts."""
        exist, logp = cls.split(q)
        out = {}
        for (name, (_, values)), lp in zip(OBJECT_ATTRIBUTES.items(), logp):
            p = (torch.sigmoid(exist)[..., None] * lp.exp()[..., : len(ATTRIBUTES[name][1])]).clamp(max=1 - 1e-6)
            absent = torch.log1p(-p).sum(1).clamp(max=-1e-7)  # log P(no query holds v)
            out[name] = torch.log(-torch.expm1(absent)) - absent
        return out


class VideoClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or ClassifierConfig()
        w = config.widths
        inputs = 6 if config.differences else 3
        self.stem = nn.Conv3d(inputs, w[0], (3, 4, 4), stride=(1, 2, 2), padding=1)  # halves H, W: full size is costly
        strides = [2] * (len(w) - 1) + [2 if config.readout == "pooled" else 1]
        self.blocks = nn.Sequential(*[Block(a, b, config.groups, s) for a, b, s in zip([w[0], *w[:-1]], w, strides)])
        self.norm = nn.LayerNorm(self.feature_dim)
        self.set_names = [n for n, (kind, _) in ATTRIBUTES.items() if kind == "set"]
        pooled = [n for n in ATTRIBUTES if config.readout == "pooled" or n not in self.set_names]
        self.heads = nn.ModuleDict({name: nn.Linear(self.feature_dim, len(ATTRIBUTES[name][1])) for name in pooled})
        self.cell_norm = nn.LayerNorm(w[-1]) if config.readout != "pooled" else None
        if config.readout == "cells":  # cell features + the clip's mean -> a score per set value
            self.cell_sizes = [len(ATTRIBUTES[n][1]) for n in self.set_names]
            self.cell_head = nn.Sequential(nn.Linear(2 * w[-1], w[-1]), nn.SiLU(), nn.Linear(w[-1], sum(self.cell_sizes)))
        if config.readout == "objects":
            self.objects = ObjectReadout(w[-1], (config.frames, config.size // config.stride), config.queries)

    @property
    def feature_dim(self) -> int:
        return self.config.widths[-1] * (2 if self.config.max_pool else 1)

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last block's map (B, C, T, h, w) and the embedding (B, feature_dim)."""
        if self.config.differences:  # frame t - frame t-1 (zero for the first frame)
            x = torch.cat([x, torch.diff(x, dim=2, prepend=x[:, :, :1])], dim=1)
        h = self.blocks(F.silu(self.stem(x)))
        pooled = h.mean(dim=(2, 3, 4))
        if self.config.max_pool:
            pooled = torch.cat([pooled, h.amax(dim=(2, 3, 4))], dim=-1)
        return h, self.norm(pooled)

    def domain_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D): the mean and spread of every channel of the stem and each block over the clip,
        low-level statistics (colours, textures, edges, motion) as well as high-level ones: what
        kinema.domain scores to tell clips like the training data from others."""
        if self.config.differences:
            x = torch.cat([x, torch.diff(x, dim=2, prepend=x[:, :, :1])], dim=1)
        h = F.silu(self.stem(x))
        stats = [torch.cat([h.mean((2, 3, 4)), h.std((2, 3, 4))], 1)]
        for block in self.blocks:
            h = block(h)
            stats.append(torch.cat([h.mean((2, 3, 4)), h.std((2, 3, 4))], 1))
        return torch.cat(stats, 1).float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The video embedding (B, feature_dim) of clips (B, 3, T, H, W) in [-1, 1]."""
        return self._trunk(x)[1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute: {name: (B, len(values))}; with object queries also "objects":
        (B, queries, 1 + classes) per query (`ObjectReadout`)."""
        h, f = self._trunk(x)
        out = {name: head(f.float()) for name, head in self.heads.items()}
        if self.cell_norm is not None:
            cells = self.cell_norm(h.flatten(2).transpose(1, 2))  # (B, T*h*w, C)
        if self.config.readout == "cells":  # every cell scores every set value; a value is present where its best cell says so
            context = cells.mean(1, keepdim=True).expand_as(cells)
            scores = self.cell_head(torch.cat([cells, context], -1)).amax(1).float()
            out.update(zip(self.set_names, scores.split(self.cell_sizes, -1)))
        if self.config.readout == "objects":
            out["objects"] = q = self.objects(cells).float()
            out.update(ObjectReadout.set_logits(q))
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> list[dict]:
        """Per clip: {attribute: {"value": value or [values], "confidence": p}}. A set holds the
        values with probability > 0.5 (at least the most likely one); its confidence is the
        lowest certainty among all its yes/no decisions."""
        return self.read(self(x))

    @staticmethod
    def read(logits: dict[str, torch.Tensor]) -> list[dict]:
        """`predict` from logits already computed."""
        out = []
        for b in range(len(logits["camera"])):
            reading = {}
            for name, (kind, values) in ATTRIBUTES.items():
                z = logits[name][b].float()
                if kind == "one":
                    p = z.softmax(-1)
                    reading[name] = {"value": values[int(p.argmax())], "confidence": round(float(p.max()), 4)}
                else:
                    p = z.sigmoid()
                    chosen = [v for v, q in zip(values, p) if q > 0.5]
                    sure = torch.maximum(p, 1 - p)
                    if not chosen and name not in MAY_BE_EMPTY:  # forced: its own p is the confidence
                        best = int(p.argmax())
                        chosen, sure[best] = [values[best]], p[best]
                    reading[name] = {"value": chosen, "confidence": round(float(sure.min()), 4)}
            out.append(reading)
        return out


def targets(attributes: list[dict]) -> dict[str, torch.Tensor]:
    """Training targets from clip attributes: multi-hot (B, n) floats for sets, (B,) class ids,
    and "objects": (B, 3, 5) class ids per object (`OBJECT_ATTRIBUTES` order), -1 where a clip has
    fewer objects."""
    out = {}
    for name, (kind, values) in ATTRIBUTES.items():
        if kind == "one":
            key = {"count": lambda a: str(a["num_objects"])}.get(name, lambda a: a[name])
            out[name] = torch.tensor([values.index(key(a)) for a in attributes])
        else:
            attr = OBJECT_ATTRIBUTES[name][0]
            hot = torch.zeros(len(attributes), len(values))
            for i, a in enumerate(attributes):
                for o in a["objects"]:
                    if o[attr] is not None:
                        hot[i, values.index(o[attr])] = 1
            out[name] = hot
    objects = torch.full((len(attributes), 3, len(OBJECT_ATTRIBUTES)), -1)
    for i, a in enumerate(attributes):
        for j, o in enumerate(a["objects"]):
            objects[i, j] = torch.tensor([values.index(o[key] or "none") for key, values in OBJECT_ATTRIBUTES.values()])
    out["objects"] = objects
    return out


def object_loss(q: torch.Tensor, objects: torch.Tensor) -> dict[str, torch.Tensor]:
    """Set-prediction loss of object queries q (B, K, 1 + classes) against objects (B, n, 5) (-1 =
    none): each clip's objects are matched one-to-one to the queries that read them best (Hungarian
    matching on the summed probabilities of the object and its classes, scipy), matched queries learn their object's
    classes (cross-entropy per attribute) and all queries learn whether they hold an object."""
    from scipy.optimize import linear_sum_assignment

    exist, logp = ObjectReadout.split(q.float())
    B, K = exist.shape
    objects = objects.to(q.device)
    real = objects[..., 0] >= 0  # (B, n)
    idx = objects.clamp(min=0)
    with torch.no_grad():  # cost[b, k, j]: minus the probabilities query k gives object j (DETR's; bounded, unlike logs)
        cost = -torch.sigmoid(exist)[..., None] - sum(
            lp.exp().gather(-1, idx[..., a][:, None].expand(-1, K, -1)) for a, lp in enumerate(logp))
    holds = torch.zeros(B, K, device=q.device)
    target = torch.full((B, K, objects.shape[-1]), -1, device=q.device)
    for b, c in enumerate(cost.cpu().numpy()):
        n = int(real[b].sum())
        rows, cols = linear_sum_assignment(c[:, :n])
        holds[b, rows] = 1
        target[b, rows] = objects[b, cols]
    parts = {"objects": F.binary_cross_entropy_with_logits(exist, holds)}
    for a, (name, lp) in enumerate(zip(OBJECT_ATTRIBUTES, logp)):
        parts[name] = F.nll_loss(lp.flatten(0, 1), target[..., a].flatten(), ignore_index=-1)
    return parts


def loss(logits: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Mean over attributes of BCE (sets) or cross-entropy (single answers); with object queries
    the sets are learnt through `object_loss` instead."""
    parts = object_loss(logits["objects"], target["objects"]) if "objects" in logits else {}
    for name, (kind, _) in ATTRIBUTES.items():
        if name in parts:
            continue
        fn = F.cross_entropy if kind == "one" else F.binary_cross_entropy_with_logits
        parts[name] = fn(logits[name].float(), target[name].to(logits[name].device))
    return sum(parts.values()) / len(parts), parts


def accuracy(logits: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per attribute, the fraction of clips read exactly right (a set must match as a whole)."""
    acc = {}
    for name, (kind, _) in ATTRIBUTES.items():
        z, y = logits[name].float().cpu(), target[name]
        if kind == "one":
            acc[name] = float((z.argmax(-1) == y).float().mean())
        else:
            pred = (z > 0).float()
            if name not in MAY_BE_EMPTY:  # never the empty set
                pred[torch.arange(len(z)), z.argmax(-1)] = 1
            acc[name] = float((pred == y).all(-1).float().mean())
    return acc


# Label-preserving symmetries of the procedural dataset, for training (`augment`).
HUE_120 = {"red": "green", "yellow": "cyan", "green": "blue", "cyan": "magenta", "blue": "red", "magenta": "yellow"}
MIRROR = {"left": "right", "right": "left", "up-left": "up-right", "up-right": "up-left",
          "down-left": "down-right", "down-right": "down-left", "pan-left": "pan-right", "pan-right": "pan-left"}


def augment(video: torch.Tensor, attributes: dict, hue_turns: int, mirror: bool) -> tuple[torch.Tensor, dict]:
    """A clip (3, T, H, W) and its attributes under a symmetry of the dataset: the hue turned by
    120 degrees `hue_turns` times (a cyclic shift of R, G, B: red -> green -> blue, yellow -> cyan ->
    magenta; exact, since every colour is a hue) and/or mirrored left-right (left and right swap
    in the motions and the camera). Hue turns show the classifier colour/shape pairs the training
    split never draws, so it reads shape apart from colour (see README: this makes the
    compositions split a test of the generator, not of the classifier)."""
    attrs = {**attributes, "objects": [dict(o) for o in attributes["objects"]]}
    for _ in range(hue_turns % 3):
        video = video[[2, 0, 1]]  # (R, G, B) <- (B, R, G): pure red becomes pure green
        for o in attrs["objects"]:
            o["color"] = HUE_120[o["color"]]
            if "hue" in o:  # the rendered hue (render() records it), kept true to the pixels
                o["hue"] = round((o["hue"] + 120) % 360, 2)
    if mirror:
        video = video.flip(-1)
        for o in attrs["objects"]:
            o["motion"] = MIRROR.get(o["motion"], o["motion"])
            if "path" in o:  # start and end centre as fractions of the frame
                o["path"] = [[round(1 - x, 4), y] for x, y in o["path"]]
        attrs["camera"] = MIRROR.get(attrs["camera"], attrs["camera"])
    return video, attrs


def prepare(video: Video, config: ClassifierConfig) -> torch.Tensor:
    """A Video as the classifier's input (3, frames, size, size) in [-1, 1]."""
    v = video.resample(config.fps).resize(config.size, config.size, "crop")
    x = v.to_tensor()[:, : config.frames]
    if x.shape[1] < config.frames:
        x = torch.cat([x, x[:, -1:].expand(-1, config.frames - x.shape[1], -1, -1)], dim=1)
    return x


def read_objects(q: torch.Tensor, threshold: float = 0.5) -> list[list[dict]]:
    """Per clip, the objects the queries q (B, K, 1 + classes) hold (P(object) > threshold, most
    certain first): {"color", "shape", "size", "motion", "speed", "confidence"}, the confidence
    being the lowest of P(object) and its classes' probabilities."""
    exist, logp = ObjectReadout.split(q.float())
    p_obj = torch.sigmoid(exist)
    out = []
    for b in range(len(q)):
        objs = []
        for k in p_obj[b].argsort(descending=True).tolist():
            if p_obj[b, k] <= threshold:
                break
            o = {key: values[int(lp[b, k].argmax())] for (key, values), lp in zip(OBJECT_ATTRIBUTES.values(), logp)}
            sure = min([float(p_obj[b, k])] + [float(lp[b, k].max().exp()) for lp in logp])
            moving = o["motion"] != "still" and o["speed"] != "none"
            objs.append({**o, "speed": o["speed"] if moving else None, "confidence": round(sure, 4)})
        out.append(objs)
    return out


def describe(reading: dict, objects: list[dict] | None = None) -> str:
    """A caption written from a prediction, e.g. 'one object: red circle; medium size; motion left (fast);
    camera static; plain background', or from the objects read one by one (`read_objects`): 'two
    objects: small red circle, left (fast); large blue star, still; camera static; plain background'."""
    n = reading["count"]["value"]
    words = {"1": "one object", "2": "two objects", "3": "three objects"}[n]
    if objects:
        things = "; ".join(f"{o['size']} {o['color']} {o['shape']}, {o['motion']}"
                           + (f" ({o['speed']})" if o["speed"] else "") for o in objects)
        parts = [f"{words}: {things}"]
    else:
        parts = [f"{words}: {', '.join(reading['colors']['value'])} {'/'.join(reading['shapes']['value'])}",
                 f"{'/'.join(reading['sizes']['value'])} size",
                 f"motion {', '.join(reading['motions']['value'])}"
                 + (f" ({'/'.join(reading['speeds']['value'])})" if reading["speeds"]["value"] else "")]
    parts += [f"camera {reading['camera']['value']}", f"{reading['background']['value']} background"]
    return "; ".join(parts)


# ------------------------------------------------------------------ using a trained classifier
ASSET = Path(__file__).resolve().parent.parent / "assets" / "classifier"  # the shipped one
UNSURE = 0.7  # below this confidence an attribute is reported as uncertain


def load_classifier(path: str | Path | None = None) -> VideoClassifier:
    """A trained classifier: the shipped one (path None), a classifier folder (config.json +
    model.safetensors), a model folder holding classifier/, or a training run holding model/."""
    from ..checkpoint import load_component

    folder = ASSET if path is None else Path(path)
    for candidate in (folder, folder / "classifier", folder / "model" / "classifier"):
        if (candidate / "config.json").is_file():
            folder = candidate
            break
    else:
        raise CheckpointError(f"no classifier in {folder} (expected config.json and model.safetensors; "
                              f"train one with `kinema train classifier`)")
    from ..domain import Domain
    model = load_component(folder, lambda c: VideoClassifier(ClassifierConfig.from_dict(c))).eval()
    model.domain = Domain.load(folder)  # what its training clips look like to it (None: not fitted)
    return model


@torch.no_grad()
def classify(video: Video, model: VideoClassifier, unsure: float = UNSURE) -> dict:
    """What the classifier reads in any video: {"attributes": {name: {"value", "confidence"}},
    "objects": [one dict per object, see `read_objects`] (with object queries, else []),
    "caption", "uncertain": [names under `unsure`], "in_domain", "domain_score"}. in_domain: the
    clip's features lie inside what the classifier saw in training (kinema.domain: a calibrated
    distance, `domain_score` <= `domain_threshold`); for a classifier without domain statistics,
    that no attribute is uncertain."""
    x = prepare(video, model.config).unsqueeze(0)
    logits = model(x)
    reading = model.read(logits)[0]
    objects = read_objects(logits["objects"])[0] if "objects" in logits else []
    uncertain = [name for name, r in reading.items() if r["confidence"] < unsure]
    result = {"attributes": reading, "objects": objects, "caption": describe(reading, objects),
              "uncertain": uncertain, "in_domain": not uncertain}
    domain = getattr(model, "domain", None)
    if domain is not None:
        score = float(domain.score(model.domain_features(x))[0])
        result.update(in_domain=score <= domain.threshold, domain_score=round(score, 3),
                      domain_threshold=round(domain.threshold, 3))
    return result


@torch.no_grad()
def classifier_features(model: VideoClassifier, videos: list[Video], batch: int = 32, per_frame: bool = True):
    """Embeddings of videos: per clip (N, D), and per frame (N, T, D) from each frame alone (a
    one-frame clip), which sees appearance but no motion (for the per-frame Fréchet distance);
    None instead of the latter with per_frame=False."""
    clip_f, frame_f = [], []
    for i in range(0, len(videos), batch):
        x = torch.stack([prepare(v, model.config) for v in videos[i: i + batch]])
        clip_f.append(model.features(x).float())
        if per_frame:
            B, C, T, H, W = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, 1, H, W)
            frame_f.append(model.features(frames).float().view(B, T, -1))
    return torch.cat(clip_f).numpy(), torch.cat(frame_f).numpy() if per_frame else None


@torch.no_grad()
def read_clips(model: VideoClassifier, clips, num: int, batch: int = 32, device: torch.device | None = None,
               progress: str | None = None) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Logits {attribute: (num, n)} of the first `num` clips of a procedural split (`SyntheticClips`
    at the classifier's size), and their attributes; `progress` names a progress bar."""
    logits, attrs = [], []
    for start in tqdm(range(0, num, batch), desc=progress, leave=False, disable=progress is None):
        chunk = [clips[i] for i in range(start, min(num, start + batch))]
        logits.append(model(torch.stack([c.video.to_tensor() for c in chunk]).to(device)))
        attrs += [c.attributes for c in chunk]
    return {k: torch.cat([lg[k] for lg in logits]) for k in ATTRIBUTES}, attrs


@torch.no_grad()
def readings(model: VideoClassifier, videos: list[Video], batch: int = 32) -> list[dict]:
    """`predict` for a list of videos of any size."""
    out = []
    for i in range(0, len(videos), batch):
        out += model.predict(torch.stack([prepare(v, model.config) for v in videos[i: i + batch]]))
    return out
