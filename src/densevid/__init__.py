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

__all__ = [
    "DensevidError",
    "Event",
    "VideoEvents",
    "load_annotations",
    "load_submission",
    "save_annotations",
    "save_submission",
]
