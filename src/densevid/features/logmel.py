"""``logmel``: log-mel spectrogram windows of the 16 kHz mono audio, plain torch.

Framing follows VGGish (Hershey et al. 2017, the audio features of most dense-video
work): 25 ms periodic-Hann frames every 10 ms, a 512-point FFT magnitude, 64 HTK-mel
bands from 125 to 7500 Hz, ``log(mel + 0.01)``, grouped into 0.96 s windows of 96
frames. Each window becomes one row: its 96 frames averaged into ``n_time_bins`` equal
slices, so a row is ``n_time_bins * n_mels`` values (time-major). ``n_time_bins=96``
keeps the raw VGGish patch. Unlike VGGish the tail is zero-padded to one more window,
so the rows cover the whole video.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from densevid.errors import DensevidError
from densevid.features.registry import Extractor, FeatureResult

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz
FRAME_SECONDS = 0.025  # STFT window, s
HOP_SECONDS = 0.010  # STFT hop, s
N_MELS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
WINDOW_SECONDS = 0.96  # one feature row, s
N_TIME_BINS = 4


@dataclass(frozen=True)
class LogmelConfig:
    """Options of the ``logmel`` extractor (defaults: VGGish's)."""

    window_seconds: float = WINDOW_SECONDS
    hop_seconds: float = WINDOW_SECONDS
    n_mels: int = N_MELS
    n_time_bins: int = N_TIME_BINS
    mel_min_hz: float = MEL_MIN_HZ
    mel_max_hz: float = MEL_MAX_HZ

    @property
    def fps(self) -> float:
        return 1.0 / self.hop_seconds


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray | float:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_filterbank(
    n_fft: int = 512,
    n_mels: int = N_MELS,
    sample_rate: int = SAMPLE_RATE,
    fmin: float = MEL_MIN_HZ,
    fmax: float = MEL_MAX_HZ,
) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular weights, triangles in the mel domain.

    Band edges are ``n_mels + 2`` points evenly spaced in mel between ``fmin`` and
    ``fmax``; the DC bin gets no weight (as VGGish's mel_features does).
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise DensevidError(f"mel range {fmin}-{fmax} Hz outside 0-{sample_rate / 2}")
    n_bins = n_fft // 2 + 1
    bin_mel = torch.as_tensor(hz_to_mel(np.linspace(0, sample_rate / 2, n_bins)))
    edges = torch.linspace(float(hz_to_mel(fmin)), float(hz_to_mel(fmax)), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (n_mels,)
    rising = (bin_mel[:, None] - lower) / (center - lower)  # (n_bins, n_mels)
    falling = (upper - bin_mel[:, None]) / (upper - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0] = 0.0
    return weights.float()


def log_mel_frames(
    audio: np.ndarray | torch.Tensor,
    *,
    n_mels: int = N_MELS,
    fmin: float = MEL_MIN_HZ,
    fmax: float = MEL_MAX_HZ,
) -> torch.Tensor:
    """16 kHz mono audio (S,) -> log-mel frames (F, n_mels), 10 ms apart.

    Frame ``i`` covers samples ``[160 i, 160 i + 400)``; no centring, as VGGish.
    """
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(-1)
    win = round(FRAME_SECONDS * SAMPLE_RATE)
    hop = round(HOP_SECONDS * SAMPLE_RATE)
    n_fft = 2 ** math.ceil(math.log2(win))
    if x.numel() < win:
        x = torch.nn.functional.pad(x, (0, win - x.numel()))
    frames = x.unfold(0, win, hop)  # (F, win)
    frames = frames * torch.hann_window(win, periodic=True)
    mag = torch.fft.rfft(frames, n=n_fft).abs()  # (F, n_fft // 2 + 1)
    mel = mag @ mel_filterbank(n_fft, n_mels, SAMPLE_RATE, fmin, fmax)  # (F, n_mels)
    return torch.log(mel + LOG_OFFSET)


def logmel_windows(
    audio: np.ndarray | torch.Tensor, config: LogmelConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Audio (S,) at 16 kHz -> (rows (T, n_time_bins * n_mels), centre times (T,)).

    Row ``k`` covers ``[k * hop, k * hop + window)`` seconds; the audio is zero-padded
    so that the last row reaches past its end.
    """
    cfg = config or LogmelConfig()
    frames_per_window = round(cfg.window_seconds / HOP_SECONDS)
    hop_frames = round(cfg.hop_seconds / HOP_SECONDS)
    if frames_per_window < 1 or hop_frames < 1:
        raise DensevidError("logmel window and hop must be at least 0.01 s")
    if frames_per_window % cfg.n_time_bins:
        raise DensevidError(
            f"logmel n_time_bins={cfg.n_time_bins} must divide the "
            f"{frames_per_window} frames of a window"
        )
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = len(x) / SAMPLE_RATE
    n_rows = max(1, math.ceil(duration / cfg.hop_seconds - 1e-9))
    # Samples needed so that frame (start of last row + window - 1) exists.
    n_frames = (n_rows - 1) * hop_frames + frames_per_window
    hop = round(HOP_SECONDS * SAMPLE_RATE)
    need = (n_frames - 1) * hop + round(FRAME_SECONDS * SAMPLE_RATE)
    if len(x) < need:
        x = np.pad(x, (0, need - len(x)))
    mel = log_mel_frames(
        x, n_mels=cfg.n_mels, fmin=cfg.mel_min_hz, fmax=cfg.mel_max_hz
    )  # (F, n_mels)
    windows = mel.unfold(0, frames_per_window, hop_frames)[:n_rows]  # (T, M, W)
    windows = windows.transpose(1, 2)  # (T, W, n_mels)
    t, w, m = windows.shape
    pooled = windows.reshape(t, cfg.n_time_bins, w // cfg.n_time_bins, m).mean(2)
    centres = np.arange(n_rows) * cfg.hop_seconds + cfg.window_seconds / 2
    return pooled.reshape(t, -1).numpy(), centres


class LogmelExtractor(Extractor):
    """Reads the audio track at 16 kHz and returns log-mel windows."""

    name = "logmel"
    kind = "audio"
    Config = LogmelConfig

    @property
    def fps(self) -> float:
        return self.config.fps

    @property
    def dim(self) -> int:
        return self.config.n_mels * self.config.n_time_bins

    def __call__(self, video: str | os.PathLike) -> FeatureResult:
        from densevid import video as vid

        info = vid.probe(video)
        audio = vid.read_audio(video, sample_rate=SAMPLE_RATE)
        rows, centres = logmel_windows(audio, self.config)
        duration = float(info.duration or len(audio) / SAMPLE_RATE)
        meta = self.describe() | {
            "fps": self.fps,
            "duration": duration,
            "timestamps": centres,
            "layout": {
                "shape": [self.config.n_time_bins, self.config.n_mels],
                "order": "time, mel",
            },
        }
        return FeatureResult(meta=meta, array=rows.astype(np.float32))
