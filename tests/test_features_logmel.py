"""logmel against an independent numpy implementation and known tones."""

import math

import numpy as np
import pytest

from densevid.errors import DensevidError
from densevid.features.logmel import (
    LogmelConfig,
    log_mel_frames,
    logmel_windows,
    mel_filterbank,
)

SR = 16_000


def _reference_log_mel(audio: np.ndarray) -> np.ndarray:
    """Straightforward loops over frames and filters, from the VGGish recipe."""
    win, hop, n_fft, n_mels = 400, 160, 512, 64

    def mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)  # == 1127 ln(1 + f/700)

    edges = np.linspace(mel(125.0), mel(7500.0), n_mels + 2)
    freqs = [SR / 2 * i / (n_fft // 2) for i in range(n_fft // 2 + 1)]
    fb = np.zeros((len(freqs), n_mels))
    for i, f in enumerate(freqs):
        if i == 0:
            continue
        m = mel(f)
        for b in range(n_mels):
            lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
            if lo < m <= c:
                fb[i, b] = (m - lo) / (c - lo)
            elif c < m < hi:
                fb[i, b] = (hi - m) / (hi - c)
    n = np.arange(win)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)  # periodic
    rows = []
    for start in range(0, len(audio) - win + 1, hop):
        spec = np.abs(np.fft.rfft(audio[start : start + win] * hann, n_fft))
        rows.append(np.log(spec @ fb + 0.01))
    return np.array(rows)


def test_log_mel_frames_match_numpy_reference():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SR // 2)).astype(np.float32)
    got = log_mel_frames(audio).numpy()
    ref = _reference_log_mel(audio.astype(np.float64))
    assert got.shape == ref.shape == (48, 64)
    np.testing.assert_allclose(got, ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("fft_bin", [10, 32, 96, 192])
def test_tone_lands_in_its_mel_band(fft_bin):
    freq = fft_bin * SR / 512  # exactly on an FFT bin: 312.5, 1000, 3000, 6000 Hz
    t = np.arange(SR) / SR
    audio = 0.5 * np.sin(2 * np.pi * freq * t)
    band = int(log_mel_frames(audio).numpy().mean(0).argmax())
    # The band whose triangle peaks nearest the tone, from the HTK formula directly.
    mel = 1127 * np.log1p(freq / 700)
    edges = np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)
    rising = (mel - edges[:-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[2:] - mel) / (edges[2:] - edges[1:-1])
    assert band == int(np.minimum(rising, falling).argmax())
    assert mel_filterbank()[fft_bin].argmax() == band


def test_silence_is_log_offset_and_windows_cover_the_audio():
    audio = np.zeros(int(2.5 * SR), np.float32)
    rows, centres = logmel_windows(audio)
    # 2.5 s / 0.96 s -> 3 rows, the last zero-padded past the end.
    assert rows.shape == (3, 4 * 64)
    np.testing.assert_allclose(rows, math.log(0.01), atol=1e-6)
    np.testing.assert_allclose(centres, [0.48, 1.44, 2.40])


def test_time_bins_are_means_of_frames():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal(SR).astype(np.float32)
    raw, _ = logmel_windows(audio, LogmelConfig(n_time_bins=96))
    pooled, _ = logmel_windows(audio, LogmelConfig(n_time_bins=4))
    assert raw.shape == (2, 96 * 64)
    patch = raw.reshape(2, 96, 64)
    np.testing.assert_allclose(
        pooled.reshape(2, 4, 64), patch.reshape(2, 4, 24, 64).mean(2), atol=1e-5
    )
    np.testing.assert_allclose(patch[0], log_mel_frames(audio).numpy()[:96], atol=1e-6)


def test_bad_time_bins():
    with pytest.raises(DensevidError, match="n_time_bins"):
        logmel_windows(np.zeros(SR), LogmelConfig(n_time_bins=5))
