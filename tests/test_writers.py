"""Writers: every format parses back with an independent reader to the same events;
the HTML report is checked in headless Chromium (skipped when it is not installed)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import html
import http.client
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import srt
import webvtt

from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents, load_submission
from densevid.writers import (
    DEFAULT_FORMATS,
    MIN_BAR_FRACTION,
    MIN_CHAPTER_S,
    WRITERS,
    WriteChapters,
    WriteHTML,
    WriteJSON,
    WriteSRT,
    WriteVTT,
    _pack_rows,
    chapters,
    format_timestamp,
    get_writer,
)

TRICKY_TEXTS = [
    "A man <b>cuts</b> onions & cries",
    'She says "hello" --> and leaves',
    "Two\nlines\n\nwith a blank one",
    "Ünïcödé: 日本語の字幕 🎬",
    "</script><script>alert(1)</script>",
    "&amp; already escaped &lt;",
    "  leading and trailing spaces  ",
]


def one_line(text: str) -> str:
    return " ".join(text.split())


def random_video(seed: int, n_events: int = 12, duration: float = 4000.0):
    """Overlapping events with awkward times (past an hour, x.9995 rounding)."""
    rng = random.Random(seed)
    events = []
    for i in range(n_events):
        start = rng.choice([rng.uniform(0, duration - 1), rng.randrange(60) + 0.9995])
        end = min(duration, start + rng.choice([0.0004, rng.uniform(0.1, 900)]))
        text = rng.choice(TRICKY_TEXTS) + f" #{i}"
        score = rng.choice([None, rng.random()])
        events.append(Event(start, end, text, score))
    return VideoEvents(f"video_{seed}", tuple(events), duration)


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def expected_cues(video: VideoEvents) -> list[tuple[int, int, str]]:
    """(start ms, end ms, one-line text) in start order; zero-length cues get 1 ms."""
    cues = []
    for e in sorted(video.events, key=lambda e: (e.start, e.end)):
        start = ms(e.start)
        cues.append((start, max(ms(e.end), start + 1), one_line(e.text)))
    return cues


# --- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds", [0, 0.0004, 0.0005, 1.5, 59.9995, 61.25, 3599.9996, 3600, 86399.999]
)
def test_srt_timestamps_match_the_srt_library(seconds):
    reference = srt.timedelta_to_srt_timestamp(
        datetime.timedelta(milliseconds=round(seconds * 1000))
    )
    assert (
        format_timestamp(seconds, always_include_hours=True, decimal_marker=",")
        == reference
    )


@pytest.mark.parametrize(
    ("seconds", "kwargs", "expected"),
    [
        (0, {"digits": 0, "compact": True}, "0:00"),
        (65, {"digits": 0, "compact": True}, "1:05"),
        (3723, {"digits": 0, "compact": True}, "1:02:03"),
        (5.25, {"digits": 1, "compact": True}, "0:05.2"),
        (5.26, {"digits": 1, "compact": True}, "0:05.3"),
        (59.96, {"digits": 1, "compact": True}, "1:00.0"),
        (62.5, {}, "01:02.500"),
        (3600.5, {}, "01:00:00.500"),
        (1.0, {"always_include_hours": True}, "00:00:01.000"),
    ],
)
def test_format_timestamp_table(seconds, kwargs, expected):
    assert format_timestamp(seconds, **kwargs) == expected


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_format_timestamp_rejects_bad_times(bad):
    with pytest.raises(DensevidError, match="cannot format time"):
        format_timestamp(bad)


# --- JSON, SRT, VTT round trips ------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_json_loads_back_as_the_same_submission(tmp_path, seed):
    video = random_video(seed)
    [path] = WriteJSON(tmp_path).write_result(video)
    assert path == tmp_path / f"{video.video_id}.json"
    loaded = load_submission(path)
    assert list(loaded) == [video.video_id]
    assert loaded[video.video_id].events == video.events  # exact, file order kept
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"version", "results", "external_data"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_srt_parses_back_to_the_same_events(tmp_path, seed):
    video = random_video(seed)
    [path] = WriteSRT(tmp_path).write_result(video)
    subs = list(srt.parse(path.read_text(encoding="utf-8")))
    got = [
        (s.start // datetime.timedelta(milliseconds=1),
         s.end // datetime.timedelta(milliseconds=1),
         s.content)
        for s in subs
    ]  # fmt: skip
    assert got == expected_cues(video)
    assert [s.index for s in subs] == list(range(1, len(subs) + 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vtt_parses_back_to_the_same_events(tmp_path, seed):
    video = random_video(seed)
    [path] = WriteVTT(tmp_path).write_result(video)
    captions = webvtt.read(str(path)).captions

    def to_ms(t) -> int:
        return ((t.hours * 60 + t.minutes) * 60 + t.seconds) * 1000 + t.milliseconds

    got = [
        (to_ms(c.start_time), to_ms(c.end_time), html.unescape(c.raw_text))
        for c in captions
    ]
    assert got == expected_cues(video)
    assert all(end > start for start, end, _ in got)  # WebVTT: end after start


def test_overlapping_events_are_separate_cues(tmp_path):
    video = VideoEvents(
        "v", (Event(0, 10, "long"), Event(2, 4, "inside"), Event(3, 12, "across"))
    )
    text = WriteVTT(tmp_path).format_result(video)
    assert [c.text for c in webvtt.from_string(text)] == ["long", "inside", "across"]


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_a_video_without_events_gives_a_valid_empty_file(tmp_path, fmt):
    video = VideoEvents("empty", (), 30.0)
    [path] = get_writer(fmt, tmp_path).write_result(video)
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        assert load_submission(path)["empty"].events == ()
    elif fmt == "srt":
        assert text == "" and list(srt.parse(text)) == []
    elif fmt == "vtt":
        assert webvtt.read(str(path)).captions == []
    elif fmt == "txt":
        assert text == ""
    else:
        assert "No events were found" in text


# --- chapters ------------------------------------------------------------------------

CHAPTER_LINE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d\d) (\S.*)$")


def parse_chapters(text: str) -> list[tuple[int, str]]:
    out = []
    for line in text.splitlines():
        m = CHAPTER_LINE.match(line)
        assert m, f"not a chapter line: {line!r}"
        h, mm, ss, title = m.groups()
        if h is None:
            assert not (len(mm) == 2 and mm.startswith("0")), line  # "0:05", not "00"
        else:
            assert len(mm) == 2, line
        out.append((int(h or 0) * 3600 + int(mm) * 60 + int(ss), title))
    return out


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("known_duration", [True, False])
def test_chapters_follow_youtube_rules(tmp_path, seed, known_duration):
    video = random_video(seed, n_events=rng_events(seed), duration=600.0)
    if not known_duration:
        video = VideoEvents(video.video_id, video.events)
    [path] = WriteChapters(tmp_path).write_result(video)
    found = parse_chapters(path.read_text(encoding="utf-8"))
    assert found == chapters(video)
    assert found[0][0] == 0
    starts = [t for t, _ in found]
    assert all(b - a >= MIN_CHAPTER_S for a, b in zip(starts, starts[1:], strict=False))
    end = video.duration or max(e.end for e in video.events)
    assert end - starts[-1] >= MIN_CHAPTER_S or len(found) == 1
    titles = {one_line(e.text) for e in video.events} | {"Intro"}
    assert {t for _, t in found} <= titles
    # Each chapter after the first begins where its event begins (whole seconds).
    by_title = {one_line(e.text): int(e.start) for e in video.events}
    assert all(by_title[title] == t for t, title in found[1:])


def rng_events(seed: int) -> int:
    return random.Random(seed).randrange(1, 40)


def test_chapters_from_overlapping_events():
    video = VideoEvents(
        "v",
        (
            Event(15.2, 80, "Chopping vegetables"),
            Event(17.0, 30, "Peeling a carrot"),  # within 10 s of the last: skipped
            Event(40.9, 45, "Boiling water"),
            Event(41.0, 50, ""),  # no caption: never a chapter
            Event(95, 100, "Serving"),  # 5 s before the end: too short
        ),
        duration=100.0,
    )
    assert chapters(video) == [
        (0, "Intro"),
        (15, "Chopping vegetables"),
        (40, "Boiling water"),
    ]
    early = VideoEvents("v", (Event(3, 20, "Hello"), Event(12, 30, "Next")), 60.0)
    assert chapters(early) == [(0, "Hello"), (12, "Next")]
    assert chapters(early, intro_title="Start", min_length_s=15) == [(0, "Hello")]


# --- HTML (static checks) ------------------------------------------------------------


def test_pack_rows_never_overlaps_and_uses_the_fewest_rows():
    rng = random.Random(7)
    for _ in range(50):
        span = 100.0
        events = []
        for _ in range(rng.randrange(1, 25)):
            s = rng.uniform(0, 99)
            end = min(span, s + rng.choice([0, rng.uniform(0, 30)]))
            events.append(Event(s, end, "e"))
        rows = _pack_rows(events, span)
        drawn = [
            (e.start, max(e.end, e.start + MIN_BAR_FRACTION * span)) for e in events
        ]
        for i in range(len(events)):
            for j in range(i):
                if rows[i] == rows[j]:
                    (a, b), (c, d) = drawn[i], drawn[j]
                    assert b <= c or d <= a, "two bars on one row overlap"
        # Fewest rows = the largest number of drawn bars covering one instant.
        depth = max(sum(a <= t < b for a, b in drawn) for t, _ in drawn)
        assert max(rows) + 1 == depth


def test_html_escapes_captions_and_links_the_video_relatively(tmp_path):
    video_file = tmp_path / "clips" / "my talk #1.mp4"
    video_file.parent.mkdir()
    video_file.write_bytes(b"")
    events = tuple(Event(i, i + 2.0, t, 0.5) for i, t in enumerate(TRICKY_TEXTS))
    video = VideoEvents("my talk #1", events, 20.0)
    [path] = WriteHTML(tmp_path / "out").write_result(video, video_path=str(video_file))
    assert path.name == "my talk #1.html"
    page = path.read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<b>cuts" not in page
    assert page.count("<script>") == 1
    for text in TRICKY_TEXTS:
        assert html.escape(text) in page  # the table shows the caption as written
    src = html.unescape(re.search(r'<video[^>]* src="([^"]+)"', page).group(1))
    assert not src.startswith(("/", "file:", "http"))
    assert (path.parent / urllib.parse.unquote(src)).resolve() == video_file.resolve()
    # No network: nothing loads from anywhere but the page and the video.
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    # The CSP allows exactly the page's own script.
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page


def test_html_without_a_video_file(tmp_path):
    video = VideoEvents("v", (Event(0, 1, "x"),))
    page = WriteHTML(tmp_path).format_result(video)
    assert "<video" not in page and "No video file" in page


# --- get_writer and file handling ----------------------------------------------------


def test_get_writer_all_and_lists(tmp_path):
    video = VideoEvents("vid", (Event(1, 2, "a"),), 5.0)
    paths = get_writer("all", tmp_path).write_result(video, video_path="x/talk.mp4")
    assert [p.name for p in paths] == [f"talk.{WRITERS[f].extension}" for f in WRITERS]
    paths = get_writer(",".join(DEFAULT_FORMATS), tmp_path / "d")(video)
    assert sorted(p.name for p in paths) == [
        "vid.html",
        "vid.json",
        "vid.srt",
        "vid.vtt",
    ]
    assert isinstance(get_writer("srt", tmp_path), WriteSRT)
    with pytest.raises(DensevidError, match="unknown output format 'pdf'"):
        get_writer("json,pdf", tmp_path)


def test_files_are_utf8_atomic_and_readable(tmp_path):
    writer = get_writer("srt", tmp_path)
    [path] = writer.write_result(VideoEvents("v", (Event(0, 1, "café"),)))
    assert "café" in path.read_bytes().decode("utf-8")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    before = path.read_bytes()
    with pytest.raises(DensevidError, match="not valid Unicode"):
        writer.write_result(VideoEvents("v", (Event(0, 1, "bad \ud800"),)))
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.srt"]  # no temp left


def test_unwritable_output_dir_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DensevidError, match="cannot write"):
        get_writer("json", blocker / "out")(VideoEvents("v"))


# --- HTML in headless Chromium -------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--window-size=1200,900",
]
BROWSER_TIMEOUT_S = 20.0


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol on 127.0.0.1: text frames,
    client masking, and fragmented or large server messages."""

    def __init__(self, url: str, timeout: float):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.split(b"\r\n")[0].split()[1] == b"101", head

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("DevTools websocket closed")
            data += chunk
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + body)

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools websocket closed")
            if opcode in (0x0, 0x1):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """One page of a headless Chromium, driven over the DevTools protocol."""

    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url, BROWSER_TIMEOUT_S)
        self.next_id = 0
        self.errors: list[str] = []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(
            json.dumps({"id": self.next_id, "method": method, "params": params})
        )
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(msg["params"]["exceptionDetails"]))
            if msg.get("method") == "Log.entryAdded":
                entry = msg["params"]["entry"]
                if entry["level"] == "error":
                    self.errors.append(entry["text"])
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        """Evaluates JS (awaiting a promise) and returns its JSON value."""
        result = self.call(
            "Runtime.evaluate",
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
            timeout=BROWSER_TIMEOUT_S * 1000,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A real mouse click (a user gesture, so the page may start playback)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=x,
                y=y,
                button="left",
                clickCount=1,
            )


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """A headless Chromium with a DevTools endpoint; skips when not installed."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip(
            "chromium not installed; the HTML report check needs it "
            "(Debian/Ubuntu: apt-get install -y chromium)"
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = open(profile.parent / "chromium.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         "about:blank"],
        stdout=log,
        stderr=log,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (profile.parent / "chromium.log").read_text(errors="replace")
                pytest.fail(f"chromium did not start:\n{tail[-2000:]}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=BROWSER_TIMEOUT_S)
        conn.request("GET", "/json/list")
        targets = json.loads(conn.getresponse().read())
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Runtime.enable")
        tools.call("Log.enable")
        tools.call("Page.enable")
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        log.close()


def make_h264(path: Path, seconds: float = 6.0, fps: int = 10) -> None:
    """A small real H.264 MP4 (a bar sweeping over a changing background)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(round(seconds * fps)):
            frame = np.zeros((96, 160, 3), np.uint8)
            frame[..., 2] = 40 + 3 * i
            frame[:, (2 * i) % 140 : (2 * i) % 140 + 20, 1] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def open_report(chromium: DevTools, page: Path) -> None:
    chromium.errors.clear()
    chromium.call("Page.navigate", url=page.resolve().as_uri())
    chromium.js(
        """new Promise((resolve, reject) => {
          const ready = () => document.readyState === "complete";
          const t0 = Date.now();
          (function poll() {
            if (ready()) { resolve(true); }
            else if (Date.now() - t0 > 15000) { reject("page did not load"); }
            else { setTimeout(poll, 20); }
          })();
        })"""
    )


def test_html_report_in_chromium(chromium, tmp_path):
    video_path = tmp_path / "media" / "clip one.mp4"
    video_path.parent.mkdir()
    make_h264(video_path, seconds=6.0)
    events = (
        Event(0.0, 2.5, "A bar <sweeps> & the sky darkens", 0.9),
        Event(1.0, 4.0, "Overlaps the first one", 0.8),
        Event(2.0, 3.0, "Overlaps both", 0.5),
        Event(3.25, 5.5, "Starts after the first ends", 0.7),
        Event(4.0, 4.02, "A very short event", None),
    )
    video = VideoEvents("clip one", events)  # duration unknown: the player tells
    [report] = WriteHTML(tmp_path / "report").write_result(
        video, video_path=str(video_path)
    )
    open_report(chromium, report)

    # The player loads the video (the relative path and the CSP both allow it).
    duration = chromium.js(
        """new Promise((resolve, reject) => {
          const v = document.getElementById("player");
          if (v.readyState >= 1) { resolve(v.duration); return; }
          v.addEventListener("loadedmetadata", () => resolve(v.duration));
          v.addEventListener("error", () => reject("video error " + v.error.code));
          setTimeout(() => reject("no metadata"), 15000);
        })"""
    )
    assert duration == pytest.approx(6.0, abs=0.15)

    # Every event is on the timeline, visible and not covered by another one.
    bars = chromium.js(
        """(() => {
          const box = document.getElementById("tracks").getBoundingClientRect();
          return [...document.querySelectorAll("#tracks .event")].map(el => {
            const r = el.getBoundingClientRect();
            const x = r.left + Math.min(r.width / 2, 2), y = r.top + r.height / 2;
            return {i: +el.dataset.i, text: el.textContent, x: x, y: y,
                    left: r.left - box.left, width: r.width, boxWidth: box.width,
                    row: [...el.parentNode.parentNode.children].indexOf(el.parentNode),
                    onTop: [x, r.left + r.width / 2, r.right - 1].every(
                      px => document.elementFromPoint(px, y) === el),
                    inside: r.left >= box.left - 0.5 && r.right <= box.right + 0.5 &&
                            r.top >= box.top && r.bottom <= box.bottom};
          });
        })()"""
    )
    assert sorted(b["i"] for b in bars) == list(range(len(events)))
    for bar in bars:
        event = events[bar["i"]]
        assert bar["text"] == event.text
        assert bar["width"] > 0 and bar["inside"] and bar["onTop"], bar
        # Positions follow the video's duration, which the player reported.
        expected_left = event.start / duration * bar["boxWidth"]
        assert bar["left"] == pytest.approx(expected_left, abs=1.5)
    rows = {b["i"]: b["row"] for b in bars}
    for i, a in enumerate(events):
        for j, b in enumerate(events[:i]):
            if a.start < b.end and b.start < a.end:
                assert rows[i] != rows[j], "overlapping events share a row"
    ticks = chromium.js("document.querySelectorAll('#axis .tick').length")
    assert ticks >= 3  # the page's script ran (the CSP let it)

    # Clicking an event seeks the video to its start and plays.
    chromium.js(
        """window.__seeks = [];
        document.getElementById("player").addEventListener(
          "seeking", e => window.__seeks.push(e.target.currentTime));"""
    )
    for bar in sorted(bars, key=lambda b: -b["i"]):  # later events first
        start = events[bar["i"]].start
        chromium.click(bar["x"], bar["y"])
        state = chromium.js(
            """new Promise(resolve => {
              const v = document.getElementById("player");
              const done = () => resolve({seeks: window.__seeks.slice(),
                paused: v.paused, t: v.currentTime,
                selected: [...document.querySelectorAll(".selected")]
                  .map(el => +el.dataset.i)});
              const t0 = Date.now();
              (function poll() {
                if ((window.__seeks.length && !v.seeking) || Date.now() - t0 > 5000) {
                  done();
                } else { setTimeout(poll, 20); }
              })();
            })"""
        )
        assert state["seeks"] == [pytest.approx(start, abs=1e-3)], (bar, state)
        assert state["selected"] == [bar["i"], bar["i"]]  # bar and table row
        assert not state["paused"]
        chromium.js("window.__seeks.length = 0")

    # A row of the table seeks too.
    chromium.js("document.querySelector('tr[data-i=\"3\"]').scrollIntoView()")
    row = chromium.js(
        """(() => { const r = document.querySelector('tr[data-i="3"]')
          .getBoundingClientRect(); return [r.left + 20, r.top + r.height / 2]; })()"""
    )
    chromium.click(*row)
    seeks = chromium.js(
        """new Promise(resolve => {
          const t0 = Date.now();
          (function poll() {
            if (window.__seeks.length || Date.now() - t0 > 5000) {
              resolve(window.__seeks.slice());
            } else { setTimeout(poll, 20); }
          })();
        })"""
    )
    assert seeks == [pytest.approx(events[3].start, abs=1e-3)]
    assert chromium.errors == []


def test_empty_html_report_in_chromium(chromium, tmp_path):
    [report] = WriteHTML(tmp_path).write_result(VideoEvents("nothing", (), 12.0))
    open_report(chromium, report)
    text = chromium.js("document.body.innerText")
    assert "No events were found" in text and "0 events" in text
    assert chromium.js("document.querySelectorAll('#axis .tick').length") >= 2
    assert chromium.errors == []
