"""kinema: text-to-video and video-to-video models that train and run on a CPU.

    import kinema
    pipe = kinema.load("runs/t2v")                      # a model folder or a training run
    video = pipe.generate("a red circle moves left", frames=17, seed=0)
    video.save("out.mp4")                               # video.frames: uint8 (T, H, W, 3), video.fps
"""

__version__ = "0.1.0"

from .errors import KinemaError  # noqa: E402
from .video import Video  # noqa: E402


def load(path=None, device=None):
    """The generation pipeline in model folder `path` (see `kinema.pipeline.Pipeline`)."""
    from .pipeline import load as _load
    return _load(path, device)


def finetune(data, out, **kwargs):
    """Fine-tune a model on a folder of footage, a LoRA adapter or every weight (see `kinema.finetuning`)."""
    from .finetuning import finetune as _finetune
    return _finetune(data, out, **kwargs)


__all__ = ["KinemaError", "Video", "finetune", "load", "__version__"]
