"""Output writers: one video's events as submission JSON, SRT, WebVTT, YouTube-style
chapters, and a self-contained HTML report.

Modelled on whisper's ``utils.py``: a ``ResultWriter`` per format with an
``extension``, ``get_writer(fmt, output_dir)`` (also "all" or a comma list), one
timestamp formatter shared by every format, UTF-8, and atomic writes (a temporary file
renamed into place) so a reader never sees half a file. Each writer writes
``<video stem>.<extension>`` into its output directory.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import math
import os
import re
import urllib.parse
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from densevid.atomic import write_text_atomic
from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents, submission_dict

logger = logging.getLogger(__name__)

# The formats `densevid caption` writes unless told otherwise.
DEFAULT_FORMATS = ("json", "srt", "vtt", "html")
# YouTube's chapter rules: the first at 0:00, ascending, each at least 10 s long, and
# at least three of them for the player to show chapters at all.
MIN_CHAPTER_S = 10
MIN_CHAPTERS = 3
# A cue must end after it starts (WebVTT); zero-length events get this much.
MIN_CUE_MS = 1
# In the HTML timeline, events narrower than this fraction of the timeline are drawn
# this wide, so rows are packed as if they were (no bar hides another).
MIN_BAR_FRACTION = 0.01
# Golden-angle hue step (degrees): neighbouring events get distinct colours.
HUE_STEP_DEG = 137.508


def format_timestamp(
    seconds: float,
    *,
    always_include_hours: bool = False,
    decimal_marker: str = ".",
    digits: int = 3,
    compact: bool = False,
) -> str:
    """Formats a time in seconds for every output format.

    Args:
        seconds: a time >= 0.
        always_include_hours: write the hours field even when it is 0 (SRT, WebVTT).
        decimal_marker: "," for SRT, "." elsewhere.
        digits: decimal places of the seconds (rounded); 0 writes whole seconds.
        compact: no zero padding on the first field, as YouTube chapters and the
            HTML report write times ("0:05", "1:02:03") instead of "00:05".

    Examples: SRT ``00:01:02,500``, WebVTT ``00:01:02.500``, chapters ``1:02``.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise DensevidError(f"cannot format time {seconds!r}: must be finite and >= 0")
    scale = 10**digits
    units = round(seconds * scale)  # integer arithmetic from here: no 59.9999 -> 60
    whole, frac = divmod(units, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours or always_include_hours:
        head = f"{hours}:{minutes:02d}" if compact else f"{hours:02d}:{minutes:02d}"
    else:
        head = f"{minutes}" if compact else f"{minutes:02d}"
    text = f"{head}:{secs:02d}"
    if digits:
        text += f"{decimal_marker}{frac:0{digits}d}"
    return text


class ResultWriter:
    """Writes one video's events to ``<output_dir>/<video stem>.<extension>``.

    Subclasses set ``extension`` and implement ``format_result``, which returns the
    file's text; ``write_result`` (also the call) writes it atomically. ``notices``
    are lines about the video (an ``OutOfDomainWarning``'s): the HTML report shows
    them above the player; JSON, SRT, WebVTT and chapters are the field's formats
    and leave them out.
    """

    extension: str = ""

    def __init__(self, output_dir: str | os.PathLike):
        self.output_dir = Path(output_dir)

    def output_path(self, video: VideoEvents, video_path: str | None = None) -> Path:
        """``<output_dir>/<stem>.<extension>``: the stem of the video file when
        given, else the video id (path separators replaced, so it stays inside)."""
        stem = Path(video_path).stem if video_path else video.video_id
        stem = re.sub(r"[/\\]", "_", stem) or "video"
        if stem in (".", ".."):
            stem = "video"
        return self.output_dir / f"{stem}.{self.extension}"

    def format_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> str:
        """The file's whole text."""
        raise NotImplementedError

    def write_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> list[Path]:
        """Writes the file and returns the paths written (one)."""
        path = self.output_path(video, video_path)
        text = self.format_result(video, video_path=video_path, notices=notices)
        return [write_text_atomic(text, path)]

    def __call__(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> list[Path]:
        return self.write_result(video, video_path=video_path, notices=notices)


class WriteJSON(ResultWriter):
    """The official submission format for this one video (loads back with
    ``densevid.events.load_submission``), one event per line so it reads and diffs
    well; events in the model's order, which the official ``max_proposals`` cut
    depends on."""

    extension = "json"

    def format_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> str:
        sub = submission_dict([video])
        events = sub["results"].pop(video.video_id)
        lines = ",\n".join(
            "    " + json.dumps(e, ensure_ascii=False, allow_nan=False) for e in events
        )
        results = f"{json.dumps(video.video_id, ensure_ascii=False)}: "
        results += f"[\n{lines}\n  ]" if events else "[]"
        version = json.dumps(sub["version"], ensure_ascii=False)
        external = json.dumps(sub["external_data"], ensure_ascii=False)
        return (
            f'{{\n  "version": {version},\n  "results": {{{results}}},\n'
            f'  "external_data": {external}\n}}\n'
        )


class SubtitlesWriter(ResultWriter):
    """Events as subtitle cues in start order; overlapping events are separate
    (overlapping) cues, which players show stacked. Captions go on one line."""

    always_include_hours: bool = True
    decimal_marker: str = "."

    def timestamp(self, ms: int) -> str:
        return format_timestamp(
            ms / 1000,
            always_include_hours=self.always_include_hours,
            decimal_marker=self.decimal_marker,
        )

    def iterate_cues(self, video: VideoEvents):
        """(start, end, text) per event: times as SRT/VTT strings, end > start."""
        for event in video.sorted().events:
            start_ms = round(event.start * 1000)
            end_ms = max(round(event.end * 1000), start_ms + MIN_CUE_MS)
            yield self.timestamp(start_ms), self.timestamp(end_ms), _one_line(event)


class WriteSRT(SubtitlesWriter):
    extension = "srt"
    decimal_marker = ","

    def format_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> str:
        blocks = [
            f"{i}\n{start} --> {end}\n{text}\n"
            for i, (start, end, text) in enumerate(self.iterate_cues(video), start=1)
        ]
        return "\n".join(blocks)


class WriteVTT(SubtitlesWriter):
    extension = "vtt"

    def format_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> str:
        # Cue text is HTML-like: "&", "<" and ">" must be escaped, and escaping ">"
        # also keeps a caption's "-->" from reading as a timing line.
        blocks = ["WEBVTT\n"]
        for start, end, text in self.iterate_cues(video):
            escaped = html.escape(text, quote=False)
            blocks.append(f"{start} --> {end}\n{escaped}\n")
        return "\n".join(blocks)


def chapters(
    video: VideoEvents,
    *,
    min_length_s: int = MIN_CHAPTER_S,
    intro_title: str = "Intro",
) -> list[tuple[int, str]]:
    """Maps possibly overlapping events onto YouTube chapters.

    Chapters are a partition: each runs until the next starts. Going through the
    events by start time (ties: higher score, then longer first), an event opens a
    chapter at its start (whole seconds, rounded down) when that is at least
    ``min_length_s`` after the previous chapter and leaves at least ``min_length_s``
    before the end of the video (the duration, or when unknown the last event's end);
    otherwise it is skipped, so of several events starting close together the first
    names the chapter. Events without a caption are left out. The first chapter is
    moved to 0:00 when it starts within ``min_length_s``; otherwise an
    ``intro_title`` chapter is put at 0:00.

    Returns:
        (start in whole seconds, title) pairs, ascending; empty when no event has
        a caption. YouTube shows chapters only when there are at least three.
    """
    titled = [e for e in video.events if _one_line(e)]
    if not titled:
        return []
    order = sorted(
        titled,
        key=lambda e: (e.start, -(e.score if e.score is not None else 0.0), -e.length),
    )
    end = video.duration if video.duration is not None else max(e.end for e in order)
    out: list[tuple[int, str]] = []
    for event in order:
        title, t = _one_line(event), math.floor(event.start)
        if not out:
            if t < min_length_s:
                out.append((0, title))
                continue
            out.append((0, intro_title))
        if t - out[-1][0] >= min_length_s and end - t >= min_length_s:
            out.append((t, title))
    return out


class WriteChapters(ResultWriter):
    """YouTube-style chapter lines ("0:00 Intro"), to paste into a video description;
    see ``chapters`` for how overlapping events become chapters."""

    extension = "txt"

    def __init__(
        self,
        output_dir: str | os.PathLike,
        *,
        min_length_s: int = MIN_CHAPTER_S,
        intro_title: str = "Intro",
    ):
        super().__init__(output_dir)
        self.min_length_s = min_length_s
        self.intro_title = intro_title

    def format_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> str:
        found = chapters(
            video, min_length_s=self.min_length_s, intro_title=self.intro_title
        )
        if 0 < len(found) < MIN_CHAPTERS:
            # one warning per video, worded alike, so the CLI gathers them in one line
            warnings.warn(
                f"{video.video_id}: fewer than {MIN_CHAPTERS} chapters, which "
                "YouTube does not show as chapters",
                stacklevel=2,
            )
        lines = [
            f"{format_timestamp(t, digits=0, compact=True)} {title}\n"
            for t, title in found
        ]
        return "".join(lines)


class WriteHTML(ResultWriter):
    """A one-file report: the video in an HTML5 player (linked by its path relative
    to the report, so keep them together), the events on a timeline with
    overlapping events on separate rows, and a table of events. Clicking an event
    seeks the player to its start and plays. No network: CSS and JS are inline, and
    a Content-Security-Policy allows only the report's own script."""

    extension = "html"

    def format_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> str:
        template, script_hash = _report_template()
        events = list(video.events)
        known_end = max((e.end for e in events), default=0.0)
        span = video.duration if video.duration is not None else known_end
        span = max(span, known_end) or 1.0
        rows = _pack_rows(events, span)
        n_rows = max(rows, default=-1) + 1
        hues = [round((i * HUE_STEP_DEG) % 360) for i in range(len(events))]

        meta = [f"{len(events)} event" + ("" if len(events) == 1 else "s")]
        if video.duration is not None:
            meta.append(f"duration {_clock(video.duration)}")
        if n_rows > 1:
            meta.append(f"{n_rows} timeline rows (events overlap)")

        if video_path:
            src = html.escape(self.video_url(video_path), quote=True)
            player = (
                f'<video id="player" controls preload="metadata" src="{src}">'
                "Your browser cannot play this video.</video>"
            )
        else:
            player = '<p class="novideo">No video file was given for this report.</p>'

        row_html = []
        for r in range(max(n_rows, 1)):
            bars = []
            for i, event in enumerate(events):
                if rows[i] != r:
                    continue
                tip = f"{_clock(event.start)}–{_clock(event.end)} {_one_line(event)}"
                bars.append(
                    f'<button type="button" class="event" data-i="{i}" '
                    f'data-start="{event.start!r}" data-end="{event.end!r}" '
                    f'style="--h: {hues[i]}; left: {100 * event.start / span:.4f}%; '
                    f'width: {100 * event.length / span:.4f}%" '
                    f'title="{html.escape(tip, quote=True)}">'
                    f"{html.escape(_one_line(event))}</button>"
                )
            row_html.append(f'<div class="row">{"".join(bars)}</div>')

        if events:
            body = []
            for i, event in enumerate(events):
                score = "" if event.score is None else f"{event.score:.3f}"
                body.append(
                    f'<tr data-i="{i}" data-start="{event.start!r}" '
                    f'data-end="{event.end!r}" tabindex="0">'
                    f'<td class="num">{i + 1}</td>'
                    f'<td class="num">{_clock(event.start)}</td>'
                    f'<td class="num">{_clock(event.end)}</td>'
                    f'<td><span class="swatch" style="--h: {hues[i]}"></span>'
                    f"{html.escape(event.text)}</td>"
                    f'<td class="num">{score}</td></tr>'
                )
            table = (
                "<table><thead><tr>"
                '<th class="num">#</th><th class="num">Start</th>'
                '<th class="num">End</th><th>Caption</th><th class="num">Score</th>'
                f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
            )
        else:
            table = '<p class="empty">No events were found in this video.</p>'

        csp = (
            "default-src 'none'; "
            f"script-src '{script_hash}'; "
            "style-src 'unsafe-inline'; "
            "media-src * file: blob: data:; img-src data:"
        )
        values = {
            "csp": csp,
            "title": html.escape(video.video_id),
            "meta": html.escape(" · ".join(meta)),
            "player": player,
            "span": repr(float(span)),
            "rows": "\n".join(row_html),
            "table": table,
            "notices": "".join(
                f'<p class="notice" role="alert">{html.escape(n)}</p>' for n in notices
            ),
        }
        return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)

    def video_url(self, video_path: str) -> str:
        """The video's URL relative to the report's directory (a file URL when no
        relative path exists, as across Windows drives)."""
        target = Path(video_path).resolve()
        try:
            rel = os.path.relpath(target, self.output_dir.resolve())
        except ValueError:
            return target.as_uri()
        return urllib.parse.quote(Path(rel).as_posix(), safe="/")


class MultiWriter(ResultWriter):
    """Several formats at once, as ``get_writer("all", ...)`` returns."""

    def __init__(self, output_dir: str | os.PathLike, formats: tuple[str, ...]):
        super().__init__(output_dir)
        self.writers = [WRITERS[fmt](output_dir) for fmt in formats]

    def format_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> str:
        raise TypeError("MultiWriter writes several files; use write_result")

    def write_result(
        self,
        video: VideoEvents,
        *,
        video_path: str | None = None,
        notices: Sequence[str] = (),
    ) -> list[Path]:
        paths: list[Path] = []
        for writer in self.writers:
            paths += writer.write_result(video, video_path=video_path, notices=notices)
        return paths


WRITERS: dict[str, type[ResultWriter]] = {
    "json": WriteJSON,
    "srt": WriteSRT,
    "vtt": WriteVTT,
    "txt": WriteChapters,
    "html": WriteHTML,
}


def get_writer(fmt: str, output_dir: str | os.PathLike) -> ResultWriter:
    """The writer for ``fmt``: one of ``WRITERS`` ("txt" is YouTube chapters),
    "all", or a comma-separated list such as "json,srt,vtt,html"."""
    names = list(WRITERS) if fmt == "all" else [f.strip() for f in fmt.split(",")]
    unknown = [n for n in names if n not in WRITERS]
    if unknown or not names:
        raise DensevidError(
            f"unknown output format {', '.join(unknown) or fmt!r}: choose from "
            f"{', '.join(WRITERS)}, all, or a comma-separated list"
        )
    names = list(dict.fromkeys(names))  # "srt,srt" writes once
    if len(names) == 1:
        return WRITERS[names[0]](output_dir)
    return MultiWriter(output_dir, tuple(names))


def _one_line(event: Event) -> str:
    """A caption with its whitespace runs (newlines included) made single spaces:
    a blank line would end an SRT/VTT cue, and chapters are one line each."""
    return " ".join(event.text.split())


def _clock(seconds: float) -> str:
    return format_timestamp(seconds, digits=1, compact=True)


def _pack_rows(events: list[Event], span: float) -> list[int]:
    """Timeline row per event (input order): greedy interval partitioning by start,
    so overlapping events never share a row and the row count is the maximum
    overlap. Bars are drawn at least ``MIN_BAR_FRACTION`` of the span wide, so they
    are packed at that width too."""
    min_len = MIN_BAR_FRACTION * span
    row_of = [0] * len(events)
    row_ends: list[float] = []
    order = sorted(range(len(events)), key=lambda i: (events[i].start, events[i].end))
    for i in order:
        e = events[i]
        drawn_end = max(e.end, e.start + min_len)
        for r, row_end in enumerate(row_ends):
            if row_end <= e.start:
                row_of[i] = r
                row_ends[r] = drawn_end
                break
        else:
            row_of[i] = len(row_ends)
            row_ends.append(drawn_end)
    return row_of


_TEMPLATE: tuple[str, str] | None = None


def _report_template() -> tuple[str, str]:
    """The HTML template and the CSP hash of its (fixed) inline script."""
    global _TEMPLATE
    if _TEMPLATE is None:
        text = (
            resources.files("densevid")
            .joinpath("assets/report.html")
            .read_text(encoding="utf-8")
        )
        scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
        assert len(scripts) == 1, "the report template has one inline script"
        digest = hashlib.sha256(scripts[0].encode("utf-8")).digest()
        _TEMPLATE = (text, "sha256-" + base64.b64encode(digest).decode("ascii"))
    return _TEMPLATE
