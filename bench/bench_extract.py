"""Feature extraction speed on this machine: which stage bounds `densevid extract`?

Measures, on the synthetic benchmark's small preset (generated into a temporary
directory unless --videos is given):

- decoding: frames/s of ``read_frames`` at the pixels settings (8 fps, 64 px) and
  at the clip settings (1 fps, 224 px shorter side), audio decoding;
- features alone on the decoded frames: ``pixels`` frames/s, CLIP frames/s for a
  ViT-B/32-sized model with random weights (the speed does not depend on the
  weights), logmel seconds of audio per second;
- the whole run: ``extract_features`` videos/s for pixels, pixels+logmel+subtitles,
  and clip (the random ViT-B/32 saved to a local directory).

With ``--asr-quality`` it instead makes narrated synthetic videos (espeak-ng speaks
the narration) and scores the ``asr`` stream against the narration subtitles: word
error rate, and precision/recall of speech time.

With ``--shape-probe`` it checks the ``pixels`` design instead: 2,000 frames with
one random shape (disc, square, triangle, cross) of random colour, size and place on
a noisy grey background; a linear classifier (logistic regression) is trained on
1,600 and tested on 400, once per feature block.

Usage:  .venv/bin/python bench/bench_extract.py [--videos DIR] [--n-videos 10]
        .venv/bin/python bench/bench_extract.py --asr-quality [--n-videos 6]
        .venv/bin/python bench/bench_extract.py --shape-probe
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def matmul_gflops() -> float:
    """float32 matmul speed now: a baseline to compare runs taken under load."""
    a = torch.randn(1024, 1024)
    a @ a
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9


def make_corpus(root: Path, n: int) -> Path:
    from densevid.synth import generate

    generate(root, n, preset="small", seed=1234)
    return root / "videos"


def random_clip_b32(path: Path) -> Path:
    """A ViT-B/32-sized CLIP vision tower with random weights, saved locally."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        projection_dim=512,
    )
    CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    return path


def _norm_words(text: str) -> list[str]:
    return [w.strip(".,?!'\"").lower() for w in text.split() if w.strip(".,?!'\"")]


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between word lists."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[:], i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return d[-1]


def asr_quality(tmp: Path, n_videos: int) -> None:
    """WER and speech-time precision/recall of asr against the narration."""
    from densevid.features.cache import load_speech, load_speech_meta
    from densevid.features.extract import extract_features
    from densevid.synth import generate

    generate(tmp / "narrated", n_videos, preset="small", seed=5, speech=True)
    feats = tmp / "feats_asr"
    rep = extract_features(
        [tmp / "narrated" / "videos"], feats, "asr,subtitles", verbose=False
    )
    step = 0.05  # s, time grid for the overlap
    errors = n_ref = both = ref_t = hyp_t = 0
    for vid in sorted({v for v, _ in rep.done}):
        ref = load_speech(feats, "subtitles", vid)
        hyp = load_speech(feats, "asr", vid)
        errors += word_errors(
            _norm_words(" ".join(s["text"] for s in ref)),
            _norm_words(" ".join(s["text"] for s in hyp)),
        )
        n_ref += len(_norm_words(" ".join(s["text"] for s in ref)))
        n = int(load_speech_meta(feats, "asr", vid)["duration"] / step) + 2
        masks = []
        for segs in (ref, hyp):
            m = np.zeros(n, bool)
            for s in segs:
                m[int(s["start"] / step) : int(s["end"] / step) + 1] = True
            masks.append(m)
        both += (masks[0] & masks[1]).sum()
        ref_t += masks[0].sum()
        hyp_t += masks[1].sum()
    print(
        f"asr (pocketsphinx + silero-vad) on {n_videos} narrated synthetic videos: "
        f"WER {errors / max(n_ref, 1):.2f} over {n_ref} words; speech time "
        f"precision {both / max(hyp_t, 1):.2f}, recall {both / max(ref_t, 1):.2f} "
        f"(against the subtitle cues); {rep.seconds:.1f} s"
    )


def shape_probe(n: int = 2000, side: int = 128) -> None:
    """Linear-probe accuracy of shape from each pixels block (chance: 0.25)."""
    from densevid.features.pixels import PixelsConfig, pixels_features

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    palette = np.array(
        [[225, 35, 35], [35, 190, 55], [45, 85, 235], [240, 215, 35], [165, 55, 210]]
    )
    frames, labels = [], []
    for i in range(n):
        shape, r = i % 4, rng.uniform(11, 22)
        cx, cy = rng.uniform(r + 2, side - r - 2, 2)
        dx, dy = xx - cx, yy - cy
        mask = [
            dx**2 + dy**2 <= r**2,
            (abs(dx) <= r) & (abs(dy) <= r),
            (abs(dy) <= r) & (abs(dx) <= (dy + r) / 2),
            ((abs(dx) <= r / 3) & (abs(dy) <= r))
            | ((abs(dy) <= r / 3) & (abs(dx) <= r)),
        ][shape]
        img = 105.0 + rng.normal(0, 15, (side, side, 1)) + np.zeros((1, 1, 3))
        img[mask] = palette[rng.integers(len(palette))]
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
        labels.append(shape)
    cfg = PixelsConfig(substeps=1)
    feats = torch.from_numpy(pixels_features(np.array(frames), cfg))
    y = torch.tensor(labels)
    for name, block in cfg.layout().items():
        x = feats[:, block["start"] : block["stop"]]
        x = (x - x[:1600].mean(0)) / (x[:1600].std(0) + 1e-6)
        torch.manual_seed(0)
        lin = torch.nn.Linear(x.shape[1], 4)
        opt = torch.optim.Adam(lin.parameters(), 1e-3, weight_decay=1e-4)
        for _ in range(400):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(lin(x[:1600]), y[:1600]).backward()
            opt.step()
        acc = (lin(x[1600:]).argmax(1) == y[1600:]).float().mean().item()
        print(f"pixels block {name:7} ({x.shape[1]:4} dims): shape accuracy {acc:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, help="directory of videos (default: synth)")
    ap.add_argument("--n-videos", type=int, default=10, help="synthetic videos to make")
    ap.add_argument("--clip-frames", type=int, default=64, help="frames through CLIP")
    ap.add_argument("--skip-clip", action="store_true")
    ap.add_argument("--asr-quality", action="store_true", help="score asr instead")
    ap.add_argument("--shape-probe", action="store_true", help="probe pixels blocks")
    args = ap.parse_args()
    if args.shape_probe:
        shape_probe()
        return
    if args.asr_quality:
        asr_quality(Path(tempfile.mkdtemp(prefix="bench_asr_")), args.n_videos)
        return

    from densevid import video as vid
    from densevid.features.clip import embed_frames, load_clip
    from densevid.features.extract import extract_features, videos_by_id
    from densevid.features.logmel import logmel_windows
    from densevid.features.pixels import PixelsConfig, pixels_features

    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    videos_dir = args.videos or make_corpus(tmp / "synth", args.n_videos)
    videos = videos_by_id([videos_dir])
    total_s = sum(vid.probe(v).duration for v in videos)
    print(
        f"torch threads: {torch.get_num_threads()}, matmul {matmul_gflops():.0f} "
        f"GFLOP/s; {len(videos)} videos, {total_s:.0f} s of video in {videos_dir}"
    )

    # --- stages, one at a time ---
    cfg = PixelsConfig()
    n_dec = t_dec = t_pix = 0.0
    n_dec224 = t_dec224 = 0.0
    audio_s = t_audio = t_mel = 0.0
    frames224 = []
    for v in videos:
        (frames, _), dt = timed(
            vid.read_frames, v, fps=cfg.fps * cfg.substeps, size=(64, 64)
        )
        n_dec += len(frames)
        t_dec += dt
        t_pix += timed(pixels_features, frames, cfg)[1]
        (f224, _), dt = timed(vid.read_frames, v, fps=1.0, size=224)
        n_dec224 += len(f224)
        t_dec224 += dt
        frames224.append(f224)
        try:
            audio, dt = timed(vid.read_audio, v)
        except vid.NoAudioError:
            continue
        audio_s += len(audio) / 16000
        t_audio += dt
        t_mel += timed(logmel_windows, audio)[1]

    rows = [
        ("decode 64 px @ 8 fps (pixels input)", n_dec / t_dec, "frames/s"),
        ("pixels features alone", n_dec / t_pix, "frames/s"),
        ("decode 224 px @ 1 fps (clip input)", n_dec224 / t_dec224, "frames/s"),
    ]
    if audio_s:
        rows += [
            ("decode audio to 16 kHz", audio_s / t_audio, "s audio/s"),
            ("logmel alone", audio_s / t_mel, "s audio/s"),
        ]
    if not args.skip_clip:
        clip_dir = random_clip_b32(tmp / "clip_b32")
        net, pre = load_clip(str(clip_dir), device="cpu")
        frames = np.concatenate(frames224)
        reps = int(np.ceil(args.clip_frames / len(frames)))
        frames = np.concatenate([frames] * reps)[: args.clip_frames]
        embed_frames(net, frames[:8], pre)  # warm-up
        _, dt = timed(embed_frames, net, frames, pre, batch_size=32)
        rows.append(("clip ViT-B/32 (random) alone, CPU", len(frames) / dt, "frames/s"))
    for name, value, unit in rows:
        print(f"{name:42} {value:10.1f} {unit}")

    # --- whole runs ---
    runs = [("pixels", {}), ("pixels,logmel,subtitles", {})]
    if not args.skip_clip:
        runs.append(("clip", {"clip": {"model": str(clip_dir), "device": "cpu"}}))
    for feats, opts in runs:
        rep = extract_features(
            [videos_dir],
            tmp / "feats",
            feats,
            options=opts,
            overwrite=True,
            verbose=False,
        )
        print(
            f"extract --features {feats:26} {len(videos) / rep.seconds:7.2f} videos/s "
            f"({total_s / rep.seconds:6.1f}x real time, {len(rep.failed)} failed)"
        )
    share = t_dec / (t_dec + t_pix)
    print(f"pixels: decoding is {100 * share:.0f}% of decode + features time")
    print(f"matmul baseline at the end: {matmul_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
