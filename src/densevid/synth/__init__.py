"""The synthetic dense-captioning benchmark: untrimmed videos with known events.

Coloured shapes appear, move, grow, shrink, change colour, bounce, blink, stop and
leave, over a scrolling cluttered background with grey distractors that never get a
caption; each shape has its own sound; a narration paraphrases some events with
shifted times. See ``generate`` and ``densevid synth --help``.
"""

from densevid.synth.dataset import (
    PRESETS,
    SPLITS,
    generate,
    make_video,
    split_sizes,
    video_id,
    video_seed,
)
from densevid.synth.stats import dataset_stats, format_stats
from densevid.synth.world import WorldConfig, plan_scene

__all__ = [
    "PRESETS",
    "SPLITS",
    "WorldConfig",
    "dataset_stats",
    "format_stats",
    "generate",
    "make_video",
    "plan_scene",
    "split_sizes",
    "video_id",
    "video_seed",
]
