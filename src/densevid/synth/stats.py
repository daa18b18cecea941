"""Summary figures of an annotation set: how many events, how long, how much they
overlap, and how large the vocabulary is (``densevid synth --stats``)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from densevid.errors import plural
from densevid.events import VideoEvents

WORD_RE = re.compile(r"[a-z]+")


def dataset_stats(videos: Iterable[VideoEvents]) -> dict[str, Any]:
    """Event counts, lengths, overlaps and vocabulary of a list of annotated videos."""
    videos = list(videos)
    counts, durations, lengths, rel, coverage = [], [], [], [], []
    n_overlapping, concurrency = 0, []
    words: Counter[str] = Counter()
    sentences: Counter[str] = Counter()
    n_words = []
    for v in videos:
        counts.append(len(v))
        duration = v.duration or max((e.end for e in v), default=0.0)
        durations.append(duration)
        spans = [(e.start, e.end) for e in v]
        for i, e in enumerate(v):
            lengths.append(e.length)
            if duration:
                rel.append(e.length / duration)
            if any(
                j != i and min(e.end, s[1]) > max(e.start, s[0])
                for j, s in enumerate(spans)
            ):
                n_overlapping += 1
            tokens = WORD_RE.findall(e.text.lower())
            words.update(tokens)
            n_words.append(len(tokens))
            sentences[" ".join(tokens)] += 1
        if duration:
            grid = np.linspace(0, duration, 1000, endpoint=False)
            active = np.zeros_like(grid)
            for s, e in spans:
                active += (grid >= s) & (grid < e)
            coverage.append(float((active > 0).mean()))
            if (active > 0).any():
                concurrency.append(float(active[active > 0].mean()))
    n_events = len(lengths)
    return {
        "videos": len(videos),
        "events": n_events,
        "events_per_video": _summary(counts),
        "video_duration_s": _summary(durations),
        "event_length_s": _summary(lengths),
        "event_length_fraction": _summary(rel),
        "overlapping_events_fraction": n_overlapping / n_events if n_events else 0.0,
        "mean_concurrent_events": float(np.mean(concurrency)) if concurrency else 0.0,
        "covered_fraction": float(np.mean(coverage)) if coverage else 0.0,
        "vocabulary": len(words),
        "distinct_sentences": len(sentences),
        "words_per_sentence": _summary(n_words),
        "top_words": words.most_common(12),
        "top_sentences": sentences.most_common(5),
    }


def format_stats(name: str, stats: dict[str, Any]) -> str:
    """A short human-readable block of the figures ``dataset_stats`` returns."""

    def row(label: str, key: str, unit: str = "") -> str:
        s = stats[key]
        return (
            f"  {label:<24} mean {s['mean']:.2f}{unit}  median {s['median']:.2f}{unit}"
            f"  min {s['min']:.2f}{unit}  max {s['max']:.2f}{unit}"
        )

    lines = [
        f"{name}: {plural(stats['videos'], 'video')}, "
        f"{plural(stats['events'], 'event')}",
        row("events per video", "events_per_video"),
        row("video duration", "video_duration_s", " s"),
        row("event length", "event_length_s", " s"),
        row("event length / video", "event_length_fraction"),
        "  overlapping events       "
        f"{stats['overlapping_events_fraction']:.1%} overlap another; "
        f"{stats['mean_concurrent_events']:.2f} at once on average; "
        f"{stats['covered_fraction']:.1%} of the time has an event",
        f"  vocabulary               {stats['vocabulary']} words, "
        f"{stats['distinct_sentences']} distinct sentences, "
        f"{stats['words_per_sentence']['mean']:.1f} words per sentence",
        "  top words                "
        + ", ".join(f"{w} {n}" for w, n in stats["top_words"]),
        "  top sentences            "
        + "; ".join(f"{s!r} x{n}" for s, n in stats["top_sentences"][:3]),
    ]
    return "\n".join(lines)


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "min": 0.0, "max": 0.0}
    a = np.asarray(values, dtype=float)
    return {
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "min": float(a.min()),
        "max": float(a.max()),
    }
