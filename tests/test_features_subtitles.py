"""subtitles: parsing, YouTube's rolling duplicates, sentences with times."""

import pytest

from densevid.errors import DensevidError
from densevid.features.subtitles import (
    find_subtitles,
    merge_sentences,
    parse_timestamp,
    subtitle_sentences,
)

YOUTUBE_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.030 --> 00:00:02.389 align:start position:0%
<sp>
so<00:00:00.480><c> today</c><00:00:00.900><c> we</c>

00:00:02.389 --> 00:00:02.399 align:start position:0%
so today we
<sp>

00:00:02.399 --> 00:00:05.000 align:start position:0%
so today we
cook<00:00:03.000><c> rice</c><00:00:04.000><c> &amp; beans</c>

00:00:05.000 --> 00:00:05.010 align:start position:0%
cook rice &amp; beans
<sp>

00:00:08.000 --> 00:00:09.000 align:start position:0%
cook rice &amp; beans
first<00:00:08.500><c> wash</c>
""".replace("<sp>", " ")  # YouTube's cues carry lines of one space

SRT = """1
00:00:01,000 --> 00:00:03,000
<i>The red circle</i> appears

2
00:00:03,000 --> 00:00:05,000
{\\an8}and moves left. Then it

3
00:00:06,000 --> 00:00:08,000
- grows!
"""


def test_parse_timestamp():
    assert parse_timestamp("01:02:03.450") == pytest.approx(3723.45)
    assert parse_timestamp("02:03.450") == pytest.approx(123.45)
    assert parse_timestamp("00:00:01,250") == pytest.approx(1.25)


def test_youtube_rolling_lines_are_undone(tmp_path):
    p = tmp_path / "v.en.vtt"
    p.write_text(YOUTUBE_VTT)
    segs = subtitle_sentences(p)
    # No punctuation: split at the 3 s pause between 5.0 and 8.0.
    assert [s["text"] for s in segs] == [
        "so today we cook rice & beans",
        "first wash",
    ]
    # Inline word times: "so" starts at the cue start, "beans" ends at its cue end,
    # "first" at 8.0 and "wash" from its tag at 8.5 to the cue end.
    assert segs[0]["start"] == pytest.approx(0.03)
    assert segs[0]["end"] == pytest.approx(5.0)
    assert (segs[1]["start"], segs[1]["end"]) == pytest.approx((8.0, 9.0))


def test_srt_tags_removed_and_sentences_span_cues(tmp_path):
    p = tmp_path / "v.srt"
    p.write_text(SRT)
    segs = subtitle_sentences(p)
    assert [s["text"] for s in segs] == [
        "The red circle appears and moves left.",
        "Then it grows!",
    ]
    # "and moves left." takes 16 of the 24 characters (with spaces) of cue 2, 3-5 s.
    assert segs[0]["start"] == pytest.approx(1.0)
    assert segs[0]["end"] == pytest.approx(3.0 + 2.0 * 16 / 24, abs=1e-3)
    assert segs[1]["start"] == pytest.approx(3.0 + 2.0 * 16 / 24, abs=1e-3)
    assert segs[1]["end"] == pytest.approx(8.0)


def test_growing_line_keeps_only_new_words(tmp_path):
    p = tmp_path / "v.vtt"
    p.write_text(
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nthe cat\n\n"
        "00:00:01.000 --> 00:00:02.000\nthe cat sat down.\n"
    )
    segs = subtitle_sentences(p)
    assert segs == [{"start": 0.0, "end": 2.0, "text": "the cat sat down."}]


def test_long_unpunctuated_speech_is_cut():
    words = [
        {"start": i * 0.5, "end": i * 0.5 + 0.5, "text": f"w{i}"} for i in range(40)
    ]
    segs = merge_sentences(words, max_duration=5.0)
    assert all(s["end"] - s["start"] <= 5.0 for s in segs)
    assert " ".join(s["text"] for s in segs) == " ".join(w["text"] for w in words)
    assert len(segs) == 4


def test_find_subtitles_and_errors(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert find_subtitles(video) is None
    (tmp_path / "clip.de.vtt").write_text("WEBVTT\n")
    (tmp_path / "clip.en.srt").write_text("")
    assert find_subtitles(video, "en").name == "clip.en.srt"
    assert find_subtitles(video).name == "clip.de.vtt"
    (tmp_path / "clip.vtt").write_text("WEBVTT\n")
    assert find_subtitles(video, "en").name == "clip.vtt"
    bad = tmp_path / "bad.vtt"
    bad.write_text("this is not a subtitle file")
    with pytest.raises(DensevidError, match="bad.vtt"):
        subtitle_sentences(bad)
    with pytest.raises(DensevidError, match="no such"):
        subtitle_sentences(tmp_path / "missing.srt")


def test_unpunctuated_cues_stay_sentences(tmp_path):
    p = tmp_path / "v.vtt"
    p.write_text(
        "WEBVTT\n\n00:00:00.969 --> 00:00:03.522\nwhat do you think comes next\n\n"
        "00:00:03.699 --> 00:00:05.885\nthe cross is shaking\n"
    )
    assert subtitle_sentences(p) == [
        {"start": 0.969, "end": 3.522, "text": "what do you think comes next"},
        {"start": 3.699, "end": 5.885, "text": "the cross is shaking"},
    ]
