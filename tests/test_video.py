"""densevid.video on tiny videos written here with PyAV, whose frames encode their
own index in two flat grey blocks, so every returned frame can be identified."""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from densevid.errors import DensevidError
from densevid.video import (
    NoAudioError,
    VideoDecodeError,
    VideoInfo,
    probe,
    read_audio,
    read_frames,
)

W, H = 64, 48


def index_image(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Frame i < 1024: left half grey 8*(i//32)+4, right half grey 8*(i%32)+4."""
    img = np.empty((h, w, 3), np.uint8)
    img[:, : w // 2] = 8 * ((i // 32) % 32) + 4
    img[:, w // 2 :] = 8 * (i % 32) + 4
    return img


def read_index(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    a = img[h // 4 : 3 * h // 4, w // 8 : 3 * w // 8].mean()
    b = img[h // 4 : 3 * h // 4, 5 * w // 8 : 7 * w // 8].mean()
    return int(round((a - 4) / 8)) * 32 + int(round((b - 4) / 8))


def write_video(
    path: Path,
    n: int = 50,
    fps: int = 10,
    *,
    w: int = W,
    h: int = H,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    gop: int | None = None,
    rotation: int | None = None,
    pix_fmt: str = "yuv420p",
    times_ms: list[int] | None = None,
    image=index_image,
    options: dict | None = None,
) -> Path:
    c = av.open(str(path), "w", options=options or {})
    s = c.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    if gop:
        s.codec_context.gop_size = gop
    if rotation is not None:
        s.set_display_rotation(rotation)
    if times_ms is not None:
        s.codec_context.time_base = Fraction(1, 1000)
    a = (
        c.add_stream("aac", rate=sample_rate, layout="mono")
        if audio is not None
        else None
    )
    for i in range(n):
        f = av.VideoFrame.from_ndarray(image(i, w, h), format="rgb24")
        if times_ms is not None:
            f.pts, f.time_base = times_ms[i], Fraction(1, 1000)
        else:
            f.pts = i
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    if a is not None:
        for k in range(0, len(audio), 1024):
            fr = av.AudioFrame.from_ndarray(
                audio[None, k : k + 1024].astype(np.float32),
                format="flt",
                layout="mono",
            )
            fr.sample_rate, fr.pts = sample_rate, k
            for p in a.encode(fr):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """5 s, 10 fps, 64x48, 440 Hz mono audio at 16 kHz."""
    t = np.arange(5 * 16000) / 16000
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    return write_video(path, audio=0.5 * np.sin(2 * np.pi * 440 * t))


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory) -> Path:
    """60 s at 10 fps with a key frame every 5 s (B-frames on, x264 default)."""
    return write_video(tmp_path_factory.mktemp("v") / "long.mp4", n=600, gop=50)


def test_probe(clip):
    info = probe(clip)
    assert isinstance(info, VideoInfo)
    assert info.duration == pytest.approx(5.0, abs=0.01)
    assert info.fps == pytest.approx(10.0)
    assert (info.width, info.height, info.rotation) == (W, H, 0)
    assert info.n_frames == 50
    assert info.has_audio and info.audio_sample_rate == 16000
    assert info.codec == "h264"


def test_all_frames(clip):
    frames, times = read_frames(clip)
    assert frames.shape == (50, H, W, 3) and frames.dtype == np.uint8
    assert [read_index(f) for f in frames] == list(range(50))
    np.testing.assert_allclose(times, np.arange(50) / 10, atol=1e-6)


@pytest.mark.parametrize("n", [1, 7, 50, 120])
def test_uniform_frames(clip, n):
    frames, times = read_frames(clip, n_frames=n)
    # reference: the frame on screen at the centre of each of n equal bins of 5 s
    expected = [int(np.floor((k + 0.5) * 5.0 / n * 10 + 1e-9)) for k in range(n)]
    assert [read_index(f) for f in frames] == expected
    np.testing.assert_allclose(times, np.asarray(expected) / 10, atol=1e-6)


@pytest.mark.parametrize("fps", [1.0, 3.0, 10.0, 25.0])
def test_frames_at_rate(clip, fps):
    frames, times = read_frames(clip, fps=fps)
    targets = np.arange(int(np.ceil(5.0 * fps - 1e-9))) / fps
    expected = [int(np.floor(t * 10 + 1e-9)) for t in targets]
    assert [read_index(f) for f in frames] == expected


@pytest.mark.parametrize("suffix,gop", [(".mp4", 50), (".mkv", 50), (".ts", 50)])
def test_sparse_sampling_seeks_and_matches_dense(tmp_path, caplog, suffix, gop):
    path = write_video(tmp_path / f"long{suffix}", n=600, gop=gop)
    with caplog.at_level(logging.DEBUG, logger="densevid.video"):
        frames, times = read_frames(path, n_frames=6)
    expected = [int(np.floor((k + 0.5) * 60.0 / 6 * 10 + 1e-9)) for k in range(6)]
    assert [read_index(f) for f in frames] == expected
    decoded = [
        int(m.group(1))
        for r in caplog.records
        if (m := re.search(r"decoded (\d+)", r.getMessage()))
    ]
    # seeking: about one GOP per target is decoded, far fewer than the 600 frames
    assert decoded and decoded[-1] < 600 / 2


def test_sparse_equals_dense_on_long_gop(long_gop):
    sparse, ts = read_frames(long_gop, fps=0.7)
    dense, td = read_frames(long_gop)
    want = np.searchsorted(td, ts, side="right") - 1
    np.testing.assert_array_equal(sparse, dense[want])
    assert [read_index(f) for f in sparse] == [
        int(np.floor(k / 0.7 * 10 + 1e-9)) for k in range(len(ts))
    ]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_key_frame_mode(tmp_path, suffix):
    path = write_video(tmp_path / f"k{suffix}", n=300, gop=40)
    # reference: PyAV's own key-frame flags over a plain full decode
    with av.open(str(path)) as c:
        keys = np.array([f.time for f in c.decode(video=0) if f.key_frame])
    assert len(keys) >= 7
    for kwargs in ({"n_frames": 12}, {"fps": 0.5}):
        frames, times = read_frames(path, exact=False, **kwargs)
        if "fps" in kwargs:
            targets = np.arange(15) / 0.5
        else:
            targets = (np.arange(12) + 0.5) * 30.0 / 12
        expected = keys[np.searchsorted(keys, targets + 1e-9, side="right") - 1]
        np.testing.assert_allclose(times, expected, atol=1e-6)
        assert [read_index(f) for f in frames] == [round(t * 10) for t in expected]
    frames, times = read_frames(path, exact=False)
    np.testing.assert_allclose(times, keys, atol=1e-6)


def test_resize_keeps_aspect_and_crop(tmp_path):
    def halves(i, w, h):  # red left half, blue right half
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : w // 2, 0] = 255
        img[:, w // 2 :, 2] = 255
        return img

    path = write_video(tmp_path / "rb.mp4", n=5, w=96, h=48, image=halves)
    f, _ = read_frames(path, n_frames=2, size=24)
    assert f.shape == (2, 24, 48, 3)
    assert f[0, 12, 5, 0] > 200 and f[0, 12, 5, 2] < 50
    assert f[0, 12, 42, 2] > 200 and f[0, 12, 42, 0] < 50
    f, _ = read_frames(path, n_frames=1, size=(33, 17))
    assert f.shape == (1, 17, 33, 3)
    f, _ = read_frames(path, n_frames=1, size=16, crop=True)
    assert f.shape == (1, 16, 16, 3)
    # the square is the centre: columns 0-7 red, 8-15 blue
    assert f[0, 8, 2, 0] > 200 and f[0, 8, 13, 2] > 200


def test_rotation(tmp_path):
    def stripe(i, w, h):  # white stripe on the stored frame's left edge
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : w // 4] = 255
        return img

    path = write_video(tmp_path / "rot.mp4", n=5, w=64, h=32, rotation=90, image=stripe)
    info = probe(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (32, 64)
    assert (info.coded_width, info.coded_height) == (64, 32)
    f, _ = read_frames(path, n_frames=1)
    assert f.shape == (1, 64, 32, 3)
    # 90 degrees counter-clockwise: the left edge becomes the bottom edge
    np.testing.assert_array_equal(f[0], np.rot90(stripe(0, 64, 32)))
    f, _ = read_frames(path, n_frames=1, size=16)
    assert f.shape == (1, 32, 16, 3)


def test_odd_sizes(tmp_path):
    path = write_video(tmp_path / "odd.mp4", n=20, w=67, h=41, pix_fmt="yuv444p")
    info = probe(path)
    assert (info.width, info.height) == (67, 41)
    f, _ = read_frames(path, n_frames=4)
    assert f.shape == (4, 41, 67, 3)
    assert [read_index(x) for x in f] == [2, 7, 12, 17]
    f, _ = read_frames(path, n_frames=2, size=(31, 19))
    assert f.shape == (2, 19, 31, 3)


def test_variable_frame_rate(tmp_path):
    times_ms = [0, 100, 150, 500, 520, 1500, 1600, 1610, 2600, 2900]
    path = write_video(tmp_path / "vfr.mkv", n=10, fps=30, times_ms=times_ms)
    frames, times = read_frames(path)
    np.testing.assert_allclose(times, np.asarray(times_ms) / 1000, atol=1e-3)
    frames, times = read_frames(path, fps=2)
    shown = np.asarray(times_ms) / 1000
    targets = np.arange(len(times)) / 2
    expected = np.searchsorted(shown, targets + 1e-9, side="right") - 1
    assert [read_index(f) for f in frames] == list(expected)


def test_read_audio(clip):
    audio = read_audio(clip)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 5 * 16000) < 2048  # AAC pads to whole 1024-sample frames
    assert np.abs(audio).max() <= 1.0
    spectrum = np.abs(np.fft.rfft(audio[4000:68000]))
    peak_hz = np.argmax(spectrum) * 16000 / 64000
    assert peak_hz == pytest.approx(440, abs=2)
    audio8 = read_audio(clip, sample_rate=8000)
    assert abs(len(audio8) - len(audio) / 2) < 64


def test_read_audio_alignment_and_resampling(tmp_path):
    sr = 44100
    x = np.zeros(3 * sr)
    x[sr : 2 * sr] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)
    path = write_video(tmp_path / "a.mp4", n=30, audio=x, sample_rate=sr)
    assert probe(path).audio_sample_rate == sr
    audio = read_audio(path)
    loud = np.flatnonzero(np.abs(audio) > 0.1)
    assert loud[0] / 16000 == pytest.approx(1.0, abs=0.03)
    assert loud[-1] / 16000 == pytest.approx(2.0, abs=0.03)


def test_no_audio(tmp_path):
    path = write_video(tmp_path / "mute.mp4", n=5)
    assert probe(path).has_audio is False
    assert probe(path).audio_sample_rate is None
    with pytest.raises(NoAudioError, match="mute.mp4: has no audio stream"):
        read_audio(path)
    assert issubclass(NoAudioError, DensevidError)


def test_errors(tmp_path):
    with pytest.raises(VideoDecodeError, match="nope.mp4: no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(VideoDecodeError, match="is a directory"):
        read_frames(tmp_path)
    text = tmp_path / "text.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoDecodeError, match="text.mp4: not a video file"):
        read_frames(text)
    with pytest.raises(VideoDecodeError, match="not a video file"):
        read_audio(text)


def test_audio_only_and_empty_video(tmp_path):
    x = np.zeros(16000)
    audio_only = tmp_path / "a.m4a"
    c = av.open(str(audio_only), "w", format="mp4")
    a = c.add_stream("aac", rate=16000, layout="mono")
    for k in range(0, len(x), 1024):
        fr = av.AudioFrame.from_ndarray(
            x[None, k : k + 1024].astype(np.float32), format="flt", layout="mono"
        )
        fr.sample_rate, fr.pts = 16000, k
        for p in a.encode(fr):
            c.mux(p)
    for p in a.encode():
        c.mux(p)
    c.close()
    with pytest.raises(VideoDecodeError, match="a.m4a: has no video stream"):
        probe(audio_only)
    assert len(read_audio(audio_only)) >= 16000
    # a Matroska file keeps a video track that has no frames
    empty = tmp_path / "empty.mkv"
    write_video(empty, n=0, audio=x)
    with pytest.raises(VideoDecodeError, match="empty.mkv: no decodable video frames"):
        read_frames(empty)


def test_truncated(tmp_path):
    # index at the front (faststart): the first part decodes
    path = write_video(
        tmp_path / "full.mp4", n=300, gop=20, options={"movflags": "faststart"}
    )
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="cut.mp4: truncated or damaged"):
        frames, times = read_frames(cut, n_frames=10)
    assert 0 < len(frames) < 10
    assert [read_index(f) for f in frames] == [15 + 30 * k for k in range(len(frames))]
    # index at the end: nothing can be read, one clear error
    plain = write_video(tmp_path / "plain.mp4", n=300)
    cut2 = tmp_path / "cut2.mp4"
    cut2.write_bytes(plain.read_bytes()[:5000])
    with pytest.raises(
        VideoDecodeError, match="cut2.mp4: not a video file, or damaged"
    ):
        probe(cut2)


def test_bad_arguments(clip):
    with pytest.raises(DensevidError, match="not both"):
        read_frames(clip, fps=1, n_frames=3)
    with pytest.raises(DensevidError, match="fps must be > 0"):
        read_frames(clip, fps=0)
    with pytest.raises(DensevidError, match="n_frames must be >= 1"):
        read_frames(clip, n_frames=0)
    with pytest.raises(DensevidError, match="crop=True needs an int size"):
        read_frames(clip, size=(10, 10), crop=True)
    with pytest.raises(DensevidError, match="size must be"):
        read_frames(clip, size=(10,))
