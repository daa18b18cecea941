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
from densevid.features.extract import ExtractReport, extract_features
from densevid.features.registry import (
    Extractor,
    ExtractorInfo,
    FeatureResult,
    available_extractors,
    get_extractor,
    register_extractor,
)

__all__ = [
    "ExtractReport",
    "Extractor",
    "ExtractorInfo",
    "FeatureResult",
    "available_extractors",
    "extract_features",
    "get_extractor",
    "register_extractor",
    "feature_paths",
    "has_features",
    "list_videos",
    "load_features",
    "load_speech",
    "save_features",
    "save_speech",
    "speech_path",
]
