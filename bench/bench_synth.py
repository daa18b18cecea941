"""Speed of the synthetic benchmark generator, per video-minute.

    .venv/bin/python bench/bench_synth.py [--videos 20] [--workers 2] [--minutes 1]

Generates ``--videos`` videos of exactly ``--minutes`` each (the default preset's
world otherwise) with ``--workers`` processes, and prints wall seconds per
video-minute, the same for one process on one video split by stage (plan, render,
audio, encode), and the extrapolation to 1,000 one-minute videos.

    .venv/bin/python bench/bench_synth.py --ceiling [--scenes 150]

instead scores what a perfect model could reach on the captions: every event
captioned with its usual wording (and, for comparison, with a second random draw of
the grammar) against the reference wording, with pycocoevalcap's METEOR 1.5 (the
corpus score the official evaluation averages, and the mean per-sentence score that
SODA_c uses) and BLEU-4.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from densevid.synth import PRESETS, generate, plan_scene
from densevid.synth.audio import render_audio
from densevid.synth.dataset import write_mp4
from densevid.synth.render import render_frames


class _UsualWording:
    """Stands in for the caption generator's random draws: always the most likely
    choice, i.e. the wording a model trained on the references would settle on."""

    def random(self) -> float:
        return 0.0

    def choice(self, n: int, p=None) -> int:
        return int(np.argmax(p))

    def integers(self, n: int) -> int:
        return 0


def caption_ceiling(n_scenes: int) -> None:
    import re

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.meteor.meteor import Meteor

    from densevid.synth import video_seed
    from densevid.synth.language import caption

    def norm(text: str) -> str:
        return " ".join(re.findall(r"[a-z]+", text.lower()))

    refs, usual, redrawn = {}, {}, {}
    for i in range(n_scenes):
        plan_rng, text_rng, *_ = (
            np.random.default_rng(s) for s in video_seed(0, "val", i).spawn(4)
        )
        scene = plan_scene(plan_rng, PRESETS["default"])
        other = np.random.default_rng(10_000 + i)
        for a in scene.actions:
            k = len(refs)
            refs[k] = [norm(caption(scene, a, text_rng))]
            usual[k] = [norm(caption(scene, a, _UsualWording()))]
            redrawn[k] = [norm(caption(scene, a, other))]
    meteor = Meteor()
    for name, hyp in (("usual wording", usual), ("random wording", redrawn)):
        corpus, per_pair = meteor.compute_score(refs, hyp)
        bleu = Bleu(4).compute_score(refs, hyp, verbose=0)[0][3]
        same = np.mean([refs[k] == hyp[k] for k in refs])
        print(
            f"{len(refs)} events, {name}: METEOR corpus {corpus:.3f}, "
            f"per sentence {np.mean(per_pair):.3f}; BLEU-4 {bleu:.3f}; "
            f"word-for-word equal {same:.1%}"
        )


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the workers)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ceiling", action="store_true", help="caption-metric ceiling")
    ap.add_argument("--scenes", type=int, default=150, help="for --ceiling")
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=1.0, help="length of each video")
    args = ap.parse_args()
    if args.ceiling:
        caption_ceiling(args.scenes)
        return
    seconds = 60.0 * args.minutes
    world = replace(PRESETS["default"], min_duration=seconds, max_duration=seconds)

    # stages, one process, one video
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    scene = plan_scene(rng, world)
    t1 = time.perf_counter()
    frames = list(render_frames(scene))
    t2 = time.perf_counter()
    audio = render_audio(scene, rng)
    t3 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_mp4(Path(tmp) / "one.mp4", iter(frames), audio, scene.fps)
    t4 = time.perf_counter()
    print(
        f"one {seconds:g} s video ({len(frames)} frames), one process: plan "
        f"{t1 - t0:.3f} s, render {t2 - t1:.2f} s, audio {t3 - t2:.2f} s, "
        f"encode {t4 - t3:.2f} s, total {t4 - t0:.2f} s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        generate(tmp, args.videos, seed=0, preset=world, workers=args.workers)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        size = sum(p.stat().st_size for p in Path(tmp, "videos").iterdir())
    video_minutes = args.videos * args.minutes
    per_minute = wall / video_minutes
    cpu_per_minute = cpu / video_minutes
    print(
        f"{args.videos} videos x {args.minutes:g} min with {args.workers} workers: "
        f"{wall:.1f} s wall = {per_minute:.2f} s per video-minute; "
        f"{cpu_per_minute:.2f} CPU-s per video-minute; "
        f"{size / video_minutes / 1e3:.0f} kB per video-minute"
    )
    print(
        f"extrapolated to 1,000 one-minute videos with {args.workers} workers: "
        f"{per_minute * 1000 / 60:.1f} min at this run's wall rate; "
        f"{cpu_per_minute * 1000 / args.workers / 60:.1f} min if each worker had "
        "a core to itself"
    )


if __name__ == "__main__":
    main()
