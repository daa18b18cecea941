"""The extraction run: end to end on generated videos, resume after a kill, shards."""

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from densevid.cli import main
from densevid.errors import DensevidError
from densevid.features.cache import has_features, load_features, load_speech
from densevid.features.extract import extract_features, parse_shard, videos_by_id
from densevid.features.pixels import PixelsConfig

SIZE = 64
FPS = 8


def make_video(
    path: Path,
    seconds: float = 2.0,
    *,
    colour=(255, 0, 0),
    audio_hz: float | None = 440.0,
    vtt: str | None = None,
) -> Path:
    """A square of ``colour`` moving right on black, with an optional sine tone."""
    n = int(seconds * FPS)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width = vs.height = SIZE
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "10"}
        if audio_hz is not None:
            aus = out.add_stream("aac", rate=16000)
            aus.layout = "mono"
        for i in range(n):
            img = np.zeros((SIZE, SIZE, 3), np.uint8)
            x = 4 + 3 * i
            img[24:40, x : x + 16] = colour
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if audio_hz is not None:
            t = np.arange(int(seconds * 16000)) / 16000
            wave = (0.5 * np.sin(2 * np.pi * audio_hz * t)).astype(np.float32)
            for k in range(0, len(wave), 1024):
                fr = av.AudioFrame.from_ndarray(
                    wave[None, k : k + 1024], format="flt", layout="mono"
                )
                fr.sample_rate = 16000
                fr.pts = k
                fr.time_base = Fraction(1, 16000)
                for pkt in aus.encode(fr):
                    out.mux(pkt)
            for pkt in aus.encode():
                out.mux(pkt)
    if vtt is not None:
        path.with_suffix(".vtt").write_text(vtt)
    return path


VTT = "WEBVTT\n\n00:00:00.200 --> 00:00:01.500\nA red square moves right.\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    make_video(d / "red.mp4", colour=(255, 0, 0), vtt=VTT)
    make_video(d / "blue.mp4", colour=(0, 0, 255), audio_hz=None, vtt=VTT)
    (d / "broken.mp4").write_bytes(b"not a video at all")
    return d


def test_end_to_end_values_and_failures(corpus, tmp_path):
    out = tmp_path / "feats"
    rep = extract_features([corpus], out, "pixels,logmel,subtitles", verbose=False)
    assert rep.n_videos == 3
    assert ("red", "pixels") in rep.done and ("red", "logmel") in rep.done
    failed = {(v, e): why for v, e, why in rep.failed}
    assert "no audio" in failed[("blue", "logmel")]
    assert {e for v, e in failed if v == "broken"} == {"pixels", "logmel", "subtitles"}
    assert "3 videos" in rep.summary() and "failed broken" in rep.summary()

    arr, meta = load_features(out, "pixels", "red")
    cfg = PixelsConfig()
    assert arr.shape == (4, cfg.dim) and meta["fps"] == 2.0
    assert meta["duration"] == pytest.approx(2.0, abs=0.15)
    np.testing.assert_allclose(meta["timestamps"], [0, 0.5, 1.0, 1.5], atol=1e-6)
    rgb = arr[:, :768].reshape(4, 16, 16, 3)
    # red square: rows 24..40 of 64 -> thumbnail rows 6..10; red only (H.264 noise)
    assert rgb[0, 6:10, 1:5, 0].mean() > 0.85 and rgb[0, 6:10, 1:5, 2].mean() < 0.15
    blue = load_features(out, "pixels", "blue")[0][:, :768].reshape(4, 16, 16, 3)
    assert blue[0, 6:10, 1:5, 2].mean() > 0.85
    # it moves right 3 px per frame: mean horizontal flow is positive
    m = cfg.layout()["motion"]
    flow = arr[1:, m["start"] : m["stop"]].reshape(3, 8, 8, 3)
    assert (flow[..., 0] * flow[..., 1]).sum() > 0

    mel, mmeta = load_features(out, "logmel", "red")
    assert mel.shape == (3, 256) and mmeta["fps"] == pytest.approx(1 / 0.96)
    # 440 Hz tone: the loudest band is the one whose triangle holds 440 Hz
    band = mel[0].reshape(4, 64).mean(0).argmax()
    edges = np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)
    mel440 = 1127 * np.log1p(440 / 700)
    assert edges[band] < mel440 < edges[band + 2]

    segs = load_speech(out, "subtitles", "red")
    assert segs == [{"start": 0.2, "end": 1.5, "text": "A red square moves right."}]

    again = extract_features(
        [corpus], out, ["pixels", "logmel", "subtitles"], verbose=False
    )
    assert again.done == [] and len(again.skipped) == 5
    assert {(v, e) for v, e, _ in again.failed} == set(failed)


def test_shards_partition_the_corpus(corpus, tmp_path):
    ids = []
    for i in range(2):
        rep = extract_features(
            [corpus], tmp_path, "subtitles", shard=f"{i}/2", verbose=False
        )
        ids.append({v for v, _ in rep.done} | {v for v, _, _ in rep.failed})
    assert ids[0].isdisjoint(ids[1])
    assert ids[0] | ids[1] == {"red", "blue", "broken"}
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(DensevidError, match="shard"):
            parse_shard(bad)


def test_workers_give_the_same_features(corpus, tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    extract_features([corpus], one, "pixels", verbose=False)
    rep = extract_features([corpus], two, "pixels", workers=2, verbose=False)
    assert sorted(rep.done) == [("blue", "pixels"), ("red", "pixels")]
    assert [v for v, _, _ in rep.failed] == ["broken"]
    for vid in ("red", "blue"):
        np.testing.assert_array_equal(
            load_features(one, "pixels", vid)[0], load_features(two, "pixels", vid)[0]
        )


def test_webdataset_shards(corpus, tmp_path):
    import webdataset as wds

    rep = extract_features(
        [corpus], tmp_path, "pixels,subtitles", webdataset=True, verbose=False
    )
    assert [p.name for p in rep.shards] == ["00000-00001-000000.tar"]
    samples = list(wds.WebDataset(str(rep.shards[0]), shardshuffle=False).decode())
    assert sorted(s["__key__"] for s in samples) == ["blue", "red"]
    red = next(s for s in samples if s["__key__"] == "red")
    np.testing.assert_array_equal(
        red["pixels.npy"], load_features(tmp_path, "pixels", "red")[0]
    )
    assert red["subtitles.json"]["segments"][0]["text"] == "A red square moves right."


def test_find_videos_errors(tmp_path):
    with pytest.raises(DensevidError, match="no such"):
        videos_by_id([tmp_path / "nope"])
    with pytest.raises(DensevidError, match="no video files"):
        videos_by_id([tmp_path])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"")
    (tmp_path / "b" / "x.mkv").write_bytes(b"")
    with pytest.raises(DensevidError, match="share the id 'x'"):
        videos_by_id([tmp_path])


def test_cli_exit_status_and_listing(corpus, tmp_path, capsys):
    # one video of three fails: partial failure, exit 1, with or without --strict
    assert (
        main(["extract", str(corpus), "-o", str(tmp_path), "--features", "pixels"]) == 1
    )
    err = capsys.readouterr().err
    assert "failed broken [pixels]" in err
    assert "3 videos in" in err and "2 extracted, 0 already complete, 1 failed" in err
    rc = main(
        [
            "extract",
            str(corpus),
            "-o",
            str(tmp_path),
            "--features",
            "pixels",
            "--strict",
        ]
    )
    assert rc == 1
    assert main(["extract", "--list"]) == 0
    assert "logmel" in capsys.readouterr().out
    assert (
        main(["extract", str(corpus), "-o", str(tmp_path), "--features", "nope"]) == 2
    )


def test_option_values_of_the_wrong_type_are_one_error(corpus, tmp_path, capsys):
    argv = ["extract", str(corpus), "-o", str(tmp_path), "--features", "pixels"]
    assert main([*argv, "--option", "pixels.tint=maybe"]) == 2
    assert "option tint must be true or false, got 'maybe'" in capsys.readouterr().err
    assert main([*argv, "--option", "pixels.size=16.5"]) == 2
    assert "option size must be a whole number" in capsys.readouterr().err
    assert not (tmp_path / "pixels").exists()  # refused before any work
    from densevid.features import get_extractor

    assert get_extractor("pixels", fps=4).config.fps == 4.0  # an int for a float


def test_other_options_into_the_same_directory_are_refused(corpus, tmp_path):
    # the videos already there would be skipped as done and keep their old rows
    one = tmp_path / "one"
    one.mkdir()
    (one / "red.mp4").write_bytes((corpus / "red.mp4").read_bytes())
    out = tmp_path / "feats"
    extract_features([one], out, ["pixels"])
    before = (out / "pixels" / "red.npy").read_bytes()
    with pytest.raises(DensevidError, match=r"tint: False there, True asked"):
        extract_features([one], out, ["pixels"], options={"pixels": {"tint": True}})
    assert (out / "pixels" / "red.npy").read_bytes() == before
    # the same options resume as before; --overwrite redoes them with the new ones
    report = extract_features([one], out, ["pixels"])
    assert len(report.skipped) == 1
    report = extract_features(
        [one], out, ["pixels"], options={"pixels": {"tint": True}}, overwrite=True
    )
    assert len(report.done) == 1
    meta = json.loads((out / "pixels" / "red.json").read_text())
    assert meta["config"]["tint"] is True
    # a sidecar written before an option existed counts as its default
    meta["config"].pop("tint")
    (out / "pixels" / "red.json").write_text(json.dumps(meta))
    assert len(extract_features([one], out, ["pixels"]).skipped) == 1


SLOW_RUN = """
import sys, time
from densevid.features import registry
from densevid.features.pixels import PixelsExtractor

class SlowPixels(PixelsExtractor):
    name = "slowpix"
    def __call__(self, video):
        time.sleep(0.4)
        return super().__call__(video)

registry.register_extractor(registry.ExtractorInfo(
    "slowpix", "visual", "__main__:SlowPixels", "pixels, slowly"))
from densevid.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_run_resumes_without_redoing_or_corrupting(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(8):
        make_video(vids / f"v{i}.mp4", seconds=1.0, audio_hz=None)
    out = tmp_path / "feats"
    script = tmp_path / "run.py"
    script.write_text(SLOW_RUN)
    cmd = [
        sys.executable,
        str(script),
        "-q",
        "extract",
        str(vids),
        "-o",
        str(out),
        "--features",
        "slowpix",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        done = (
            list((out / "slowpix").glob("*.json")) if (out / "slowpix").exists() else []
        )
        if len(done) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    complete = sorted(p.stem for p in (out / "slowpix").glob("*.json"))
    assert 3 <= len(complete) < 8, complete
    mtimes = {v: (out / "slowpix" / f"{v}.npy").stat().st_mtime_ns for v in complete}

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (
        f"{8 - len(complete)} extracted, {len(complete)} already complete" in res.stderr
    )
    for v, t in mtimes.items():  # finished videos were not redone
        assert (out / "slowpix" / f"{v}.npy").stat().st_mtime_ns == t
    # every output complete and equal to a fresh single run's
    fresh = tmp_path / "fresh"
    extract_features([vids], fresh, "pixels", verbose=False)
    for i in range(8):
        assert has_features(out, "slowpix", f"v{i}")
        np.testing.assert_array_equal(
            load_features(out, "slowpix", f"v{i}")[0],
            load_features(fresh, "pixels", f"v{i}")[0],
        )
    # a kill during a write may leave a temporary file; never a half output
    assert all(
        p.suffix == ".tmp" for p in (out / "slowpix").iterdir() if p.name[0] == "."
    )
    meta = json.loads((out / "slowpix" / "v0.json").read_text())
    assert meta["extractor"] == "slowpix"


def test_synthetic_benchmark_videos(tmp_path):
    synth = pytest.importorskip("densevid.synth")
    synth.generate(tmp_path / "synth", 2, preset="small", seed=7)
    videos = tmp_path / "synth" / "videos"
    out = tmp_path / "feats"
    rep = extract_features([videos], out, "pixels,logmel,subtitles", verbose=False)
    assert rep.failed == [] and len(rep.done) == 6
    import webvtt

    from densevid.video import probe

    for mp4 in sorted(videos.glob("*.mp4")):
        duration = probe(mp4).duration
        arr, meta = load_features(out, "pixels", mp4.stem)
        assert arr.shape[0] == int(np.ceil(duration * 2 - 1e-6))
        assert np.isfinite(arr).all() and arr[:, :768].max() > 0.2
        mel, _ = load_features(out, "logmel", mp4.stem)
        assert mel.shape[0] == int(np.ceil(duration / 0.96 - 1e-9))
        # the narration is unpunctuated, one sentence per cue
        cues = [c.text for c in webvtt.read(str(mp4.with_suffix(".vtt")))]
        assert [s["text"] for s in load_speech(out, "subtitles", mp4.stem)] == cues


def test_clip_extractor_through_the_run(corpus, tmp_path):
    import torch

    from densevid.features.clip import embed_frames, load_clip
    from densevid.video import read_frames
    from helpers import save_tiny_clip

    torch.manual_seed(0)
    model_dir = save_tiny_clip(tmp_path / "clip", layers=1, projection_dim=16)
    opts = {"clip": {"model": str(model_dir), "fps": 2.0, "device": "cpu"}}
    rep = extract_features([corpus / "red.mp4"], tmp_path, "clip", options=opts)
    assert rep.done == [("red", "clip")]
    arr, meta = load_features(tmp_path, "clip", "red")
    assert arr.dtype == np.float16 and arr.shape == (4, 16)
    assert meta["weights"] == str(model_dir) and meta["preprocess"]["crop"] == 32
    np.testing.assert_allclose(np.linalg.norm(arr.astype(np.float32), axis=1), 1, 1e-3)
    net, pre = load_clip(str(model_dir), device="cpu")
    frames, times = read_frames(corpus / "red.mp4", fps=2.0, size=32)
    np.testing.assert_allclose(meta["timestamps"], times)
    np.testing.assert_allclose(arr, embed_frames(net, frames, pre), atol=2e-3)
