"""kinema: text-to-video and video-to-video models that train and run on a CPU.

    from kinema import Video
    video = Video.read("clip.mp4").resize(64, 64, fit="crop")
"""

__version__ = "0.1.0"

from .errors import KinemaError  # noqa: E402
from .video import Video  # noqa: E402

__all__ = ["KinemaError", "Video", "__version__"]
