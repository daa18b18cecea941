"""densevid: dense video captioning, every event in a video with times and a caption."""

from densevid.errors import DensevidError
from densevid.events import (
    Event,
    VideoEvents,
    load_annotations,
    load_submission,
    save_annotations,
    save_submission,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    # torch-heavy entry points load on first use, so `densevid --help` stays fast
    if name in ("load_model", "load_models", "available_models"):
        from densevid import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'densevid' has no attribute {name!r}")


__all__ = [
    "DensevidError",
    "Event",
    "VideoEvents",
    "available_models",
    "load_annotations",
    "load_model",
    "load_models",
    "load_submission",
    "save_annotations",
    "save_submission",
]
