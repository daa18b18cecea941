"""Feature extraction: per-video visual, audio and speech streams on disk.

Read features with ``load_features`` / ``load_speech``; make them with
``densevid extract`` or ``extract_features``.
"""

from densevid.features.cache import (
    feature_paths,
    has_features,
    list_videos,
    load_features,
    load_speech,
    save_features,
    save_speech,
    speech_path,
)

__all__ = [
    "feature_paths",
    "has_features",
    "list_videos",
    "load_features",
    "load_speech",
    "save_features",
    "save_speech",
    "speech_path",
]
