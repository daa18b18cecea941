"""The soundtrack of a scene: each shape has its own voice, heard while it acts.

The voice (timbre and pitch) names the shape; the envelope and pitch contour follow
the action (a bounce pulses, growing glides up, shrinking glides down, appearing fades
in, leaving fades out, stopping decays), so audio repeats what the picture shows.
Under it: coloured noise and ticks at random times that mean nothing.
An optional narration spoken by espeak-ng is mixed in where the binary exists.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from densevid.synth.world import Action, Scene

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Hz
VOICE_LEVEL = 0.16  # peak amplitude of one acting object
SPEECH_LEVEL = 0.5  # peak amplitude of the narration
RAMP_S = 0.02  # fade at both ends of each sound, against clicks
TICK_RATE_HZ = 0.4  # mean rate of meaningless ticks
RUMBLE_RATE_HZ = 400.0  # control points per second of the low-frequency noise
# shape -> (fundamental Hz, harmonic amplitudes 1..n): sine, square-ish, bright, buzz
VOICES: dict[str, tuple[float, tuple[float, ...]]] = {
    "circle": (262.0, (1.0,)),
    "square": (196.0, (1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14)),
    "triangle": (392.0, (1.0, 0.5, 0.0, 0.25)),
    "diamond": (131.0, (0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6)),
}
ESPEAK_RATE_WPM = 165


def render_audio(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The scene's soundtrack: (round(duration * SAMPLE_RATE),) float32 in [-1, 1]."""
    n = int(round(scene.duration * SAMPLE_RATE))
    out = _coloured_noise(rng, n) * scene.noise_level
    for t in rng.uniform(0, scene.duration, rng.poisson(TICK_RATE_HZ * scene.duration)):
        _add_tick(
            out, float(t), float(rng.uniform(800, 3000)), float(rng.uniform(0.03, 0.1))
        )
    for obj in scene.objects:
        for action in obj.actions:
            _add_voice(out, obj.shape, action)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rumble (a random walk sampled at RUMBLE_RATE_HZ, interpolated) under a little
    hiss: noise weighted to low frequencies, as room noise is, at a fraction of the
    cost of spectral shaping. Peak level about 1."""
    if n == 0:
        return np.zeros(0)
    n_coarse = int(n * RUMBLE_RATE_HZ / SAMPLE_RATE) + 2
    walk = np.cumsum(rng.standard_normal(n_coarse))
    walk -= np.linspace(walk[0], walk[-1], n_coarse)  # no drift across the video
    rumble = np.interp(
        np.arange(n) * (RUMBLE_RATE_HZ / SAMPLE_RATE), np.arange(n_coarse), walk
    )
    rumble /= np.abs(rumble).max() + 1e-9
    hiss = rng.standard_normal(n).astype(np.float32)
    return 0.8 * rumble + 0.05 * hiss


def _add_tick(out: np.ndarray, t: float, freq: float, level: float) -> None:
    i0 = int(t * SAMPLE_RATE)
    k = np.arange(min(int(0.06 * SAMPLE_RATE), len(out) - i0))
    if len(k) <= 0:
        return
    out[i0 : i0 + len(k)] += (
        level
        * np.exp(-k / (0.01 * SAMPLE_RATE))
        * np.sin(2 * np.pi * freq * k / SAMPLE_RATE)
    )


def _add_voice(out: np.ndarray, shape: str, a: Action) -> None:
    i0 = int(round(a.start * SAMPLE_RATE))
    i1 = min(int(round(a.end * SAMPLE_RATE)), len(out))
    if i1 <= i0:
        return
    t = np.arange(i1 - i0) / SAMPLE_RATE
    p = t / max(a.length, 1e-6)
    f0, harmonics = VOICES[shape]
    pitch = np.ones_like(t)
    env = np.ones_like(t)
    if a.kind == "appear":
        env = p
    elif a.kind == "leave":
        env = 1.0 - p
    elif a.kind == "move":
        pitch = 1.0 + 0.02 * np.sin(2 * np.pi * 5.0 * t)  # vibrato
    elif a.kind == "stop":
        env = np.exp(-3.0 * p)
    elif a.kind == "grow":
        pitch = 2.0 ** (0.6 * p)
    elif a.kind == "shrink":
        pitch = 2.0 ** (-0.6 * p)
    elif a.kind == "change_colour":
        pitch = np.where((t * 4.0) % 1.0 < 0.5, 1.0, 1.26)  # two-tone alternation
    elif a.kind == "bounce":
        env = np.abs(np.sin(np.pi * t / a.period)) ** 0.5
    elif a.kind == "shake":
        env = 0.6 + 0.4 * np.sin(2 * np.pi * t / a.period)  # tremolo at the shake rate
    elif a.kind == "blink":
        env = np.where((t / a.period) % 1.0 < 0.5, 1.0, 0.0)
    phase = 2 * np.pi * f0 * np.cumsum(pitch) / SAMPLE_RATE
    wave_ = np.zeros_like(t)
    for h, amp in enumerate(harmonics, start=1):
        if amp:
            wave_ += amp * np.sin(h * phase)
    wave_ /= sum(harmonics)
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / RAMP_S)
    out[i0:i1] += VOICE_LEVEL * wave_ * env * ramp


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def mix_speech(audio: np.ndarray, cues: list[tuple[float, float, str]]) -> np.ndarray:
    """Speaks each cue with espeak-ng at its start time (cut at its end), in place.

    Returns the audio unchanged when espeak-ng is not installed.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        return audio
    with tempfile.TemporaryDirectory(prefix="densevid_speech_") as tmp:
        wav = Path(tmp) / "cue.wav"
        for start, end, text in cues:
            subprocess.run(
                [exe, "-s", str(ESPEAK_RATE_WPM), "-w", str(wav), text],
                check=True,
                capture_output=True,
            )
            speech = _read_wav_mono(wav, SAMPLE_RATE)
            i0 = int(round(start * SAMPLE_RATE))
            i1 = min(len(audio), int(round(end * SAMPLE_RATE)), i0 + len(speech))
            if i1 > i0:
                peak = np.abs(speech).max() + 1e-9
                audio[i0:i1] += SPEECH_LEVEL * speech[: i1 - i0] / peak
    np.clip(audio, -1.0, 1.0, out=audio)
    return audio


def _read_wav_mono(path: Path, rate: int) -> np.ndarray:
    """16-bit PCM wav -> float mono at ``rate`` (linear interpolation)."""
    with wave.open(str(path), "rb") as w:
        sr, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    x = data.reshape(-1, ch).mean(axis=1) / 32768.0
    if sr == rate or len(x) == 0:
        return x
    n = int(math.floor(len(x) * rate / sr))
    return np.interp(np.arange(n) * sr / rate, np.arange(len(x)), x)
