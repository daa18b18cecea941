"""``subtitles``: timed sentences from a ``.srt`` / ``.vtt`` file beside the video.

YouTube subtitles are the main free source of speech for video corpora, and its
automatic captions come as "rolling" cues: each cue repeats the previous line above a
new one, with 10 ms cues in between that repeat a line alone, and inline word times
(``<00:00:01.480><c> word</c>``). Reading them naively triples every sentence. Here:

1. cues are parsed with the ``srt`` / ``webvtt-py`` libraries, tags and entities
   removed;
2. lines already shown by the previous cue are dropped, and a line that grows the
   previous one keeps only its new words (``dedupe_rolling``);
3. every word gets a time: from inline word times when present, else spread over its
   cue in proportion to characters;
4. words are merged into sentences that end at ``.?!``, at a pause longer than
   ``max_gap`` or when a sentence would exceed ``max_duration`` (``merge_sentences``);
   unpunctuated subtitles that are not rolling end a sentence at every cue.

File search beside ``dir/<stem>.mp4``: ``<stem>.vtt``, ``<stem>.srt``, then
``<stem>.<lang>.vtt|srt`` (yt-dlp's naming, ``language`` first when set).
"""

from __future__ import annotations

import html
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densevid.errors import DensevidError
from densevid.features.registry import Extractor, FeatureResult

logger = logging.getLogger(__name__)

SUBTITLE_EXTENSIONS = (".vtt", ".srt")
MAX_GAP_S = 1.5  # a pause this long ends a sentence
MAX_SENTENCE_S = 12.0  # unpunctuated speech is cut into pieces this long
SENTENCE_END = re.compile(r"[.?!…]['\")\]]*$")
_TIME_TAG = re.compile(r"<((?:\d+:)?\d{1,2}:\d{2}\.\d{3})>")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <c>, <i>, <v Name>, {\an8}
_SPEAKER = re.compile(r"^\s*(?:>>|-)\s*")


@dataclass(frozen=True)
class SubtitlesConfig:
    """Options of the ``subtitles`` extractor."""

    language: str | None = None
    max_gap: float = MAX_GAP_S
    max_duration: float = MAX_SENTENCE_S


@dataclass
class Cue:
    """One subtitle cue: times in seconds and its text lines (raw, tags kept)."""

    start: float
    end: float
    lines: list[str]


# --- reading -----------------------------------------------------------------------


def parse_timestamp(text: str) -> float:
    """'01:02:03.450', '02:03.450' or '01:02:03,450' -> seconds."""
    parts = text.strip().replace(",", ".").split(":")
    try:
        secs = float(parts[-1])
        mins = int(parts[-2]) if len(parts) > 1 else 0
        hours = int(parts[-3]) if len(parts) > 2 else 0
    except (ValueError, IndexError) as e:
        raise DensevidError(f"bad subtitle timestamp {text!r}") from e
    return hours * 3600 + mins * 60 + secs


def read_cues(path: str | os.PathLike) -> list[Cue]:
    """Parses a .vtt (webvtt-py) or .srt (srt) file into cues sorted by start."""
    p = Path(path)
    if not p.is_file():
        raise DensevidError(f"{p}: no such subtitle file")
    ext = p.suffix.lower()
    if ext == ".vtt":
        cues = _read_vtt(p)
    elif ext == ".srt":
        cues = _read_srt(p)
    else:
        raise DensevidError(f"{p}: not a subtitle file (expected .vtt or .srt)")
    cues.sort(key=lambda c: (c.start, c.end))
    return cues


def _read_vtt(p: Path) -> list[Cue]:
    import webvtt

    try:
        captions = webvtt.read(str(p))
    except Exception as e:  # webvtt raises several types for malformed files
        raise DensevidError(f"{p}: not a valid WebVTT file ({e})") from e
    return [
        Cue(parse_timestamp(c.start), parse_timestamp(c.end), list(c.lines))
        for c in captions
    ]


def _read_srt(p: Path) -> list[Cue]:
    import srt

    text = p.read_bytes().decode("utf-8-sig", errors="replace")
    try:
        subs = list(srt.parse(text))
    except srt.SRTParseError as e:
        raise DensevidError(f"{p}: not a valid SRT file ({e})") from e
    return [
        Cue(s.start.total_seconds(), s.end.total_seconds(), s.content.splitlines())
        for s in subs
    ]


def _clean(line: str) -> str:
    text = html.unescape(_TAG.sub("", line))
    text = _SPEAKER.sub("", text)
    return " ".join(text.split())


# --- rolling duplicates and word times ---------------------------------------------


def dedupe_rolling(cues: list[Cue]) -> list[dict[str, Any]]:
    """Cues -> words [{"start", "end", "text", "cue_end"}], YouTube's repeats removed.

    A line equal to one of the previous cue's lines is a repeat; a line that starts
    with the previous cue's last line contributes only its continuation. ``cue_end``
    marks the last new word of each cue.
    """
    words: list[dict[str, Any]] = []
    prev: list[str] = []
    for cue in cues:
        n_before = len(words)
        shown: list[str] = []
        for raw in cue.lines:
            clean = _clean(raw)
            if not clean:
                continue
            shown.append(clean)
            if clean in prev:
                continue
            new_raw = raw
            if prev and clean.startswith(prev[-1] + " "):
                # grows the previous line: keep the part after it
                n_old = len(prev[-1].split())
                new_raw = " ".join(_strip_words(raw, n_old))
            words.extend(_timed_words(new_raw, cue.start, cue.end))
        if len(words) > n_before:
            words[-1]["cue_end"] = True
        if shown:
            prev = shown
    return words


def is_rolling(cues: list[Cue]) -> bool:
    """True for YouTube-style rolling captions (cues repeating the previous line)."""
    prev: set[str] = set()
    repeats = 0
    for cue in cues:
        lines = {c for c in (_clean(x) for x in cue.lines) if c}
        repeats += bool(lines & prev)
        prev = lines or prev
    return repeats >= max(1, len(cues) // 4)


def is_punctuated(cues: list[Cue]) -> bool:
    """True when at least 30 % of cues hold a sentence end (. ? !)."""
    texts = [" ".join(_clean(x) for x in c.lines) for c in cues]
    n = sum(bool(re.search(r"[.?!…]", t)) for t in texts)
    return bool(texts) and n >= 0.3 * len(texts)


def _strip_words(raw: str, n: int) -> list[str]:
    """Drops the first n words of a raw line, keeping time tags after them."""
    tokens = re.split(r"(\s+|<[^>]*>)", raw)
    out, seen = [], 0
    for tok in tokens:
        if not tok or tok.isspace():
            continue
        if tok.startswith("<"):
            if seen >= n:
                out.append(tok)
            continue
        for w in _clean(tok).split():
            if seen >= n:
                out.append(w)
            seen += 1
    return out


def _timed_words(raw: str, start: float, end: float) -> list[dict[str, Any]]:
    """Words of one raw line with times: inline ``<hh:mm:ss.mmm>`` tags when present,
    else spread over [start, end] by characters."""
    pieces = _TIME_TAG.split(raw)  # text, time, text, time, text...
    spans = [(start, pieces[0])]
    for i in range(1, len(pieces), 2):
        t = min(max(parse_timestamp(pieces[i]), start), end)
        spans.append((t, pieces[i + 1]))
    out = []
    for k, (t0, text) in enumerate(spans):
        t1 = spans[k + 1][0] if k + 1 < len(spans) else end
        ws = _clean(text).split()
        if not ws:
            continue
        total = sum(len(w) + 1 for w in ws)
        acc = 0
        for w in ws:
            a = t0 + (t1 - t0) * acc / total
            acc += len(w) + 1
            out.append({"start": a, "end": t0 + (t1 - t0) * acc / total, "text": w})
    return out


# --- sentences ---------------------------------------------------------------------


def merge_sentences(
    words: list[dict[str, Any]],
    *,
    max_gap: float = MAX_GAP_S,
    max_duration: float = MAX_SENTENCE_S,
    split_at_cues: bool = False,
) -> list[dict[str, Any]]:
    """Timed words -> sentences [{"start", "end", "text"}].

    A sentence ends after a word ending in . ? ! (closing quotes allowed), after the
    last word of a cue when ``split_at_cues``, before a pause longer than
    ``max_gap``, or before a word that would make it longer than ``max_duration`` s.
    """
    sentences: list[dict[str, Any]] = []
    cur: list[dict[str, Any]] = []

    def flush() -> None:
        if cur:
            sentences.append(
                {
                    "start": round(cur[0]["start"], 3),
                    "end": round(max(cur[-1]["end"], cur[0]["start"]), 3),
                    "text": " ".join(w["text"] for w in cur),
                }
            )
            cur.clear()

    for w in words:
        if cur and (
            w["start"] - cur[-1]["end"] > max_gap
            or w["end"] - cur[0]["start"] > max_duration
        ):
            flush()
        cur.append(w)
        if SENTENCE_END.search(w["text"]) or (split_at_cues and w.get("cue_end")):
            flush()
    flush()
    return sentences


def subtitle_sentences(
    path: str | os.PathLike,
    *,
    max_gap: float = MAX_GAP_S,
    max_duration: float = MAX_SENTENCE_S,
) -> list[dict[str, Any]]:
    """A .srt/.vtt file -> timed sentences, rolling duplicates undone.

    Punctuated subtitles are merged at sentence ends across cues; rolling
    (YouTube automatic) captions, which have no punctuation, at pauses; other
    unpunctuated subtitles keep each cue as one sentence.
    """
    cues = read_cues(path)
    words = dedupe_rolling(cues)
    return merge_sentences(
        words,
        max_gap=max_gap,
        max_duration=max_duration,
        split_at_cues=not is_punctuated(cues) and not is_rolling(cues),
    )


def find_subtitles(
    video: str | os.PathLike, language: str | None = None
) -> Path | None:
    """The subtitle file beside ``video`` (see the module docstring), or None."""
    v = Path(video)
    for ext in SUBTITLE_EXTENSIONS:
        p = v.with_suffix(ext)
        if p.is_file():
            return p
    if language:
        for ext in SUBTITLE_EXTENSIONS:
            p = v.with_name(f"{v.stem}.{language}{ext}")
            if p.is_file():
                return p
    found = sorted(
        p
        for p in v.parent.glob(f"{glob_escape(v.stem)}.*")
        if p.suffix.lower() in SUBTITLE_EXTENSIONS and p.is_file()
    )
    return found[0] if found else None


def glob_escape(text: str) -> str:
    """Escapes glob metacharacters in a file stem."""
    return re.sub(r"([*?\[])", r"[\1]", text)


class SubtitlesExtractor(Extractor):
    """Reads the subtitle file beside each video as timed sentences."""

    name = "subtitles"
    kind = "speech"
    Config = SubtitlesConfig

    def __call__(self, video: str | os.PathLike) -> FeatureResult:
        from densevid import video as vid

        cfg = self.config
        path = find_subtitles(video, cfg.language)
        if path is None:
            raise DensevidError(
                f"{video}: no subtitle file beside it "
                f"({Path(video).stem}.vtt, .srt or .<lang>.vtt)"
            )
        segments = subtitle_sentences(
            path, max_gap=cfg.max_gap, max_duration=cfg.max_duration
        )
        duration = float(vid.probe(video).duration)
        meta = self.describe() | {"duration": duration, "source": path.name}
        return FeatureResult(meta=meta, segments=segments)
