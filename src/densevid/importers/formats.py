"""The feature files the field distributes: where a video's rows are, and when.

A ``Format`` is data only: the container and layout the peers' loaders read, the
densevid streams its rows become (each named after the format, so a model config's
``visual_features`` can name it), the width of each part of a row, and the time a
row stands for. The facts come from the public code and documentation named in
``reference``; docs/features.md ("Importing the features the field distributes")
gives one example per format.

Time of a row. A format that states its clip length and stride in seconds
(``stride_s``) gets row centres ``i * stride_s + clip_s / 2`` ("stride" timing). A
format whose stride is counted in frames of each video's own frame rate, which the
files do not record (C3D every 8 frames, TSN every ~0.5 s rounded to whole frames),
cannot be timed from the rows alone: its rows are spread evenly over the video's
duration from the annotation file, row i at ``(i + 0.5) * duration / T`` ("even"
timing), which is how the peers read them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from densevid.errors import DensevidError

Container = Literal["hdf5", "npy", "pth"]


@dataclass(frozen=True)
class Format:
    """One distributed feature layout and the densevid streams it becomes.

    Attributes:
        name: the FORMAT argument of ``densevid import``.
        container: how the rows are stored (HDF5 file, .npy files, a torch .pth).
        streams: densevid stream -> the width of each part of its rows; a stream of
            several parts (TSN: ResNet then BN-Inception) is their per-row
            concatenation, in this order.
        layout: where one video's rows are, in the words of the peers' loaders.
        clip_s: seconds one row covers (0 for a single frame).
        stride_s: seconds between the starts of consecutive rows; None when the
            files do not say (rows then spread evenly over the duration).
        reference: the public code or documentation the layout and timing come from.
        summary: one line for ``densevid import --list``.
        speech_stream: the speech stream an ``--asr`` file becomes ("" if none).
    """

    name: str
    container: Container
    streams: Mapping[str, tuple[int, ...]]
    layout: str
    clip_s: float | None
    stride_s: float | None
    reference: str
    summary: str
    speech_stream: str = ""
    suffixes: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def timing(self) -> str:
        """'stride' when rows carry their own time, 'even' when they are spread
        over the annotated duration."""
        return "stride" if self.stride_s else "even"

    def dim(self, stream: str) -> int:
        """A stream's row width (the sum of its parts)."""
        return int(sum(self.streams[stream]))

    def config(self) -> dict[str, object]:
        """What the sidecar's ``config`` records, so a model trained on these rows
        (``ModelConfig.extractor_options``) and a later import into the same
        directory can tell whether they were timed alike."""
        return {
            "format": self.name,
            "timing": self.timing,
            "clip_s": self.clip_s,
            "stride_s": self.stride_s,
        }


# One row every 16 frames at 15 fps, 16-frame clips: 16/15 s apart, 16/15 s long.
_TSP_S = 16 / 15
# BMT's I3D: stacks of 64 frames at 25 fps, step 64 frames.
_BMT_I3D_S = 64 / 25
# MDVC's I3D: stacks of 24 frames at 25 fps, step 24, the VGGish window's length.
_MDVC_I3D_S = 24 / 25
# VGGish: non-overlapping 0.96 s log-mel examples.
_VGGISH_S = 0.96

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="tsp",
            container="hdf5",
            streams={"tsp": (512,)},
            layout="HDF5 file per split; dataset <video id> of shape (T, 512)",
            clip_s=_TSP_S,
            stride_s=_TSP_S,
            reference="HumamAlwassel/TSP README (ActivityNet features: 16-frame "
            "clips at 15 fps, stride 16 frames); ttengwang/PDVC reads them as "
            "<v_id>.npy, 512 wide",
            summary="R(2+1)D-34 TSP features of ActivityNet, one row per 16/15 s",
        ),
        Format(
            name="c3d",
            container="hdf5",
            streams={"c3d": (500,)},
            layout="sub_activitynet_v1-3.c3d.hdf5; dataset <video id>/c3d_features "
            "of shape (T, 500)",
            clip_s=None,
            stride_s=None,
            reference="ActivityNet challenge C3D (PCA 500, every 8 frames of the "
            "video's own frame rate); v-iashin/MDVC dataset.py and SST-style "
            "loaders read f[id]['c3d_features'] and place rows by t / duration",
            summary="ActivityNet C3D fc7, PCA to 500; rows spread over the duration",
        ),
        Format(
            name="tsn",
            container="npy",
            streams={"tsn": (2048, 1024)},
            layout="<id>_resnet.npy (T, 2048) and <id>_bn.npy (T, 1024), one pair "
            "per video (split folders allowed)",
            clip_s=None,
            stride_s=None,
            reference="salesforce/densecap data/anet_dataset.py (pairs concatenated "
            "per row, about 0.5 s apart rounded to whole frames of each video); "
            "ttengwang/PDVC data/video_dataset.py (key[2:13] + '_resnet.npy')",
            summary="TSN appearance (ResNet) + motion (BN-Inception), one stream of "
            "3072; rows spread over the duration",
            suffixes={"_resnet": ("tsn", 0), "_bn": ("tsn", 1)},
        ),
        Format(
            name="i3d",
            container="npy",
            streams={"i3d_rgb": (1024,), "i3d_flow": (1024,)},
            layout="<id>_rgb.npy and <id>_flow.npy, each (T, 1024)",
            clip_s=_BMT_I3D_S,
            stride_s=_BMT_I3D_S,
            reference="v-iashin/BMT datasets/load_features.py and main.py "
            "(i3d_25fps_stack64step64_2stream_npy, fps_at_extraction 25, "
            "feature_timespan_in_fps 64)",
            summary="BMT's two-stream I3D, 64-frame stacks at 25 fps (2.56 s rows)",
            suffixes={"_rgb": ("i3d_rgb", 0), "_flow": ("i3d_flow", 0)},
        ),
        Format(
            name="vggish",
            container="npy",
            streams={"vggish": (128,)},
            layout="<id>.npy of shape (T, 128)",
            clip_s=_VGGISH_S,
            stride_s=_VGGISH_S,
            reference="v-iashin/BMT datasets/load_features.py and main.py "
            "(vggish_npy, audio_feature_timespan 0.96)",
            summary="BMT's VGGish audio embeddings, one row per 0.96 s window",
            suffixes={"": ("vggish", 0)},
        ),
        Format(
            name="mdvc",
            container="hdf5",
            streams={
                "mdvc_rgb": (1024,),
                "mdvc_flow": (1024,),
                "mdvc_vggish": (128,),
            },
            layout="HDF5 with datasets <id>/i3d_features/rgb, <id>/i3d_features/flow "
            "(T, 1024) and <id>/vggish_features (T, 128), video and audio in one "
            "file or two",
            clip_s=_MDVC_I3D_S,
            stride_s=_MDVC_I3D_S,
            reference="v-iashin/MDVC dataset/dataset.py and README "
            "(sub_activitynet_v1-3.i3d_25fps_stack24step24_2stream.hdf5, "
            "sub_activitynet_v1-3.vggish.hdf5)",
            summary="MDVC's I3D (24-frame stacks at 25 fps) and VGGish, 0.96 s rows",
        ),
        Format(
            name="clip-pth",
            container="pth",
            streams={"clip_vitl14": (768,)},
            layout="one torch .pth: {video id: tensor (T, 768)}; --asr: a pickle "
            "{video id: {'start': [...], 'end': [...], 'text': [...]}}",
            clip_s=0.0,
            stride_s=1.0,
            reference="antoyang/VidChapters dataset/dvc_dataset.py, args.py and "
            "README (CLIP ViT-L/14 at 1 fps, clipvitl14.pth, "
            "youcook2_asr_align_proc.pkl); antoyang/FrozenBiLM extract/ (ffmpeg fps "
            "filter, frames at 0, 1, 2 ... s)",
            summary="VidChapters' CLIP ViT-L/14 frames at 1 fps, and its WhisperX ASR",
            speech_stream="asr_whisperx",
        ),
    )
}


def get_format(name: str) -> Format:
    """The format called ``name``, or one line listing those there are."""
    try:
        return FORMATS[name]
    except KeyError:
        raise DensevidError(
            f"unknown feature format '{name}'; formats: {', '.join(FORMATS)}"
        ) from None


def rows_duration(fmt: Format, n_rows: int) -> float:
    """The video length the rows of a strided format cover, for sources read
    without an annotation file: the end of the last clip (at least a stride)."""
    if fmt.stride_s is None:
        raise DensevidError(
            f"{fmt.name} rows carry no time of their own: give --annotations FILE "
            "for each video's duration"
        )
    return (n_rows - 1) * fmt.stride_s + max(fmt.clip_s or 0.0, fmt.stride_s)


def row_times(fmt: Format, n_rows: int, duration: float) -> np.ndarray:
    """Seconds of each row's centre (see the module docstring), within
    [0, duration]: a strided row past the end (a duration slightly shorter than
    the video the features were made from) is placed at the end."""
    if fmt.stride_s is None:
        return (np.arange(n_rows) + 0.5) * duration / n_rows
    centres = np.arange(n_rows) * fmt.stride_s + (fmt.clip_s or 0.0) / 2
    return np.minimum(centres, duration)


def overruns(fmt: Format, n_rows: int, duration: float) -> bool:
    """True when a strided format's rows reach more than one stride past the
    duration: the rows were made from another video, or the format is not the
    one the rows were written in."""
    if fmt.stride_s is None:
        return False
    last = (n_rows - 1) * fmt.stride_s + (fmt.clip_s or 0.0) / 2
    return last > duration + fmt.stride_s
