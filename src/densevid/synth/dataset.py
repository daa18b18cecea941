"""Whole synthetic datasets in the ActivityNet Captions layout.

    OUT/videos/<video_id>.mp4   H.264 + AAC, 128x128 at 8 fps, 16 kHz mono
    OUT/videos/<video_id>.vtt   the narration, beside its video
    OUT/train.json, val.json, test.json   ActivityNet annotations

Every video is drawn from its own seed, derived from (seed, split, index), so videos
can be made in any order, by any number of workers, and splits never share a seed.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents, save_annotations
from densevid.synth.audio import SAMPLE_RATE, espeak_available, mix_speech, render_audio
from densevid.synth.language import caption, narration, write_vtt
from densevid.synth.render import render_frames
from densevid.synth.world import FRAME_SIZE, WorldConfig, plan_scene
from densevid.workers import stoppable_pool

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# x264 settings: the fastest preset (twice as fast as veryfast here, files 2x larger),
# mean error ~1.5 grey levels at this size, a key frame every 4 s for fast seeks, one
# thread per video (parallelism is over videos) so output is reproducible.
X264_OPTIONS = {"preset": "ultrafast", "crf": "23", "g": "32", "threads": "1"}
AUDIO_BIT_RATE = 32_000  # bit/s, AAC, 16 kHz mono

PRESETS: dict[str, WorldConfig] = {
    # tests and quick looks: a few seconds of video, a couple of events
    "small": WorldConfig(
        min_duration=8.0,
        max_duration=16.0,
        max_events=4,
        seconds_per_event=3.0,
        max_objects=3,
        n_distractors=(1, 3),
    ),
    # what the bundled model trains on: 20-60 s, 1-10 events
    "default": WorldConfig(min_duration=20.0, max_duration=60.0),
    # the full range the benchmark covers: 20 s to 5 minutes
    "long": WorldConfig(min_duration=20.0, max_duration=300.0, seconds_per_event=10.0),
}


@dataclass(frozen=True)
class VideoJob:
    video_id: str
    split: str
    index: int
    seed: int
    config: WorldConfig
    speech: bool


def video_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed sequence of one video: distinct for every (seed, split, index)."""
    return np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index)])


def video_id(split: str, index: int) -> str:
    return f"v_{split}{index:05d}"


def split_sizes(
    n_videos: int, fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS
) -> dict[str, int]:
    """Videos per split; val and test get at least one each once there are 3."""
    if n_videos < 1:
        raise DensevidError(f"synth: need at least one video, got {n_videos}")
    total = sum(fractions)
    if total <= 0 or any(f < 0 for f in fractions):
        raise DensevidError(f"synth: bad split fractions {fractions}")
    n_val = int(round(n_videos * fractions[1] / total))
    n_test = int(round(n_videos * fractions[2] / total))
    if n_videos >= 3:
        n_val, n_test = (
            max(n_val, 1 if fractions[1] else 0),
            max(n_test, 1 if fractions[2] else 0),
        )
    n_train = max(0, n_videos - n_val - n_test)
    return {"train": n_train, "val": n_val, "test": n_test}


def make_video(
    out_dir: str | os.PathLike,
    vid: str,
    seed_seq: np.random.SeedSequence,
    config: WorldConfig,
    *,
    speech: bool = False,
) -> VideoEvents:
    """Draws one scene and writes ``<vid>.mp4`` and ``<vid>.vtt`` into ``out_dir``.

    Returns:
        the video's reference events, sorted by start.
    """
    plan_rng, text_rng, voice_rng, audio_rng = (
        np.random.default_rng(s) for s in seed_seq.spawn(4)
    )
    scene = plan_scene(plan_rng, config)
    events = tuple(
        Event(round(a.start, 2), round(a.end, 2), caption(scene, a, text_rng))
        for a in scene.actions
    )
    cues = narration(scene, voice_rng)
    audio = render_audio(scene, audio_rng)
    if speech:
        audio = mix_speech(audio, cues)
    out = Path(out_dir)
    write_vtt(cues, out / f"{vid}.vtt")
    write_mp4(out / f"{vid}.mp4", render_frames(scene), audio, scene.fps)
    return VideoEvents(vid, events, round(scene.duration, 3))


def write_mp4(path: Path, frames, audio: np.ndarray, fps: int) -> None:
    """H.264 + AAC in MP4 with the index at the front (plays while downloading)."""
    tmp = path.with_name(f".{path.name}.part")
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as c:
        v = c.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        v.width = v.height = FRAME_SIZE
        v.pix_fmt = "yuv420p"
        a = c.add_stream(
            "aac", rate=SAMPLE_RATE, layout="mono", options={"aac_coder": "fast"}
        )
        a.bit_rate = AUDIO_BIT_RATE
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
        step = 1024  # AAC frame size
        for k in range(0, len(audio), step):
            chunk = audio[None, k : k + step]
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate = SAMPLE_RATE
            af.pts = k
            for packet in a.encode(af):
                c.mux(packet)
        for packet in a.encode():
            c.mux(packet)
    os.replace(tmp, path)


def _run_job(job: VideoJob, videos_dir: str) -> VideoEvents:
    return make_video(
        videos_dir,
        job.video_id,
        video_seed(job.seed, job.split, job.index),
        job.config,
        speech=job.speech,
    )


def generate(
    out: str | os.PathLike,
    n_videos: int,
    *,
    seed: int = 0,
    preset: str | WorldConfig = "default",
    workers: int = 1,
    fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
    speech: bool = False,
    verbose: bool = False,
) -> dict[str, list[VideoEvents]]:
    """Writes a synthetic dense-captioning dataset (see the module docstring).

    Args:
        out: the output directory (created; existing videos of the same ids are
            overwritten).
        n_videos: videos over all splits, divided by ``fractions`` (train, val, test).
        seed: the dataset seed; the same seed gives the same annotations and videos.
        preset: "small", "default", "long", or a ``WorldConfig``.
        workers: processes making videos in parallel.
        speech: speak the narration into the audio with espeak-ng (skipped with a
            warning when espeak-ng is not installed).
        verbose: show a progress bar.

    Returns:
        split -> the reference events of its videos, in id order.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise DensevidError(
                f"synth: unknown preset {preset!r} (have: {', '.join(PRESETS)})"
            )
        config = PRESETS[preset]
    else:
        config = preset
    if workers < 1:
        raise DensevidError(f"synth: workers must be >= 1, got {workers}")
    if speech and not espeak_available():
        warnings.warn(
            "synth: espeak-ng is not installed, so the narration is not spoken "
            "(apt-get install espeak-ng); subtitles are written as usual",
            stacklevel=2,
        )
        speech = False
    out = Path(out)
    videos_dir = out / "videos"
    try:
        videos_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DensevidError(f"{out}: cannot create the output directory ({e})") from e

    sizes = split_sizes(n_videos, fractions)
    jobs = [
        VideoJob(video_id(split, i), split, i, seed, config, speech)
        for split in SPLITS
        for i in range(sizes[split])
    ]
    results: dict[str, VideoEvents] = {}
    progress = _progress(len(jobs), verbose)
    if workers == 1:
        for job in jobs:
            results[job.video_id] = _run_job(job, str(videos_dir))
            progress.update(1)
    else:
        with stoppable_pool(workers) as pool:
            futures = {
                pool.submit(_run_job, job, str(videos_dir)): job.video_id
                for job in jobs
            }
            for future in _as_completed(futures):
                results[futures[future]] = future.result()
                progress.update(1)
    progress.close()

    by_split: dict[str, list[VideoEvents]] = {}
    for split in SPLITS:
        videos = [results[j.video_id] for j in jobs if j.split == split]
        save_annotations(videos, out / f"{split}.json")
        by_split[split] = videos
    logger.info(
        "wrote %d videos to %s (%s)",
        len(jobs),
        out,
        ", ".join(f"{s}: {n}" for s, n in sizes.items()),
    )
    return by_split


def _as_completed(futures):
    from concurrent.futures import as_completed

    return as_completed(futures)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, verbose: bool):
    if not verbose:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="synth")
