import json
import math

import pytest

from densevid.cli import main
from densevid.errors import DensevidError
from densevid.events import (
    Event,
    VideoEvents,
    load_annotations,
    load_submission,
    match_video_ids,
    save_annotations,
    save_submission,
)


def write(tmp_path, obj, name="f.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


ANN = {
    "v_a": {
        "duration": 10.0,
        "timestamps": [[0, 4], [3, 9.5]],
        "sentences": ["x", "y"],
    },
    "v_b": {"duration": 5.0, "timestamps": [[1, 2]], "sentences": ["z"]},
}


def test_round_trip_annotations(tmp_path):
    videos = load_annotations(write(tmp_path, ANN))
    assert list(videos) == ["v_a", "v_b"]
    assert videos["v_a"].events[1] == Event(3.0, 9.5, "y")
    out = tmp_path / "out.json"
    save_annotations(videos.values(), out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(ANN))


def test_round_trip_submission(tmp_path):
    videos = [VideoEvents("v_a", (Event(1.0, 2.0, "a", 0.5), Event(0.0, 3.0, "b")))]
    p = tmp_path / "s.json"
    save_submission(videos, p)
    data = json.loads(p.read_text())
    assert set(data) == {"version", "results", "external_data"}
    assert load_submission(p)["v_a"] == videos[0]


def test_submission_variants(tmp_path):
    bare = {"v_a.mp4": [{"caption": "hi", "timestamp": [1, 2], "score": 0.3}]}
    videos = load_submission(write(tmp_path, bare))
    assert videos == {"v_a": VideoEvents("v_a", (Event(1.0, 2.0, "hi", 0.3),))}


def test_max_per_video_keeps_file_order(tmp_path):
    entries = [{"sentence": str(i), "timestamp": [i, i + 1]} for i in (5, 1, 3)]
    sub = {"version": "1", "results": {"v": entries}, "external_data": {}}
    videos = load_submission(write(tmp_path, sub), max_per_video=2)
    assert [e.text for e in videos["v"]] == ["5", "1"]


def test_real_annotations_load_with_warning(shared_data):
    with pytest.warns(UserWarning, match="2 reversed segments swapped"):
        videos = load_annotations(shared_data / "activitynet" / "train.json")
    assert len(videos) == 10009
    assert sum(len(v) for v in videos.values()) == 37421
    with pytest.raises(DensevidError, match="ends before it starts"):
        load_annotations(shared_data / "activitynet" / "train.json", strict=True)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ({"v": {"duration": 5, "timestamps": [[1, 2]]}}, "missing key 'sentences'"),
        (
            {"v": {"duration": 5, "timestamps": [[1, "x"]], "sentences": ["a"]}},
            "event 0: end must be a number",
        ),
        (
            {"v": {"duration": 5, "timestamps": [[1, math.nan]], "sentences": ["a"]}},
            "must be finite",
        ),
        (
            {"v": {"duration": 5, "timestamps": [[-1, 2]], "sentences": ["a"]}},
            "negative time",
        ),
        (
            {
                "v": {
                    "duration": 5,
                    "timestamps": [[1, 2], [1]],
                    "sentences": ["a", "b"],
                }
            },
            "event 1: timestamp must be",
        ),
        ({"v": {"duration": 0, "timestamps": [], "sentences": []}}, "duration must be"),
        (
            {"v": {"duration": 5, "timestamps": [[1, 2]], "sentences": ["a", "b"]}},
            "1 timestamps but 2 sentences",
        ),
    ],
)
def test_bad_annotations(tmp_path, content, message):
    with pytest.raises(DensevidError, match=message):
        load_annotations(write(tmp_path, content))


def test_strict_past_duration(tmp_path):
    ann = {"v": {"duration": 5, "timestamps": [[1, 7]], "sentences": ["a"]}}
    p = write(tmp_path, ann)
    with pytest.warns(UserWarning, match="1 ends past the video duration"):
        assert load_annotations(p)["v"].events[0].end == 7.0
    with pytest.raises(DensevidError, match="video v, event 0: ends at 7"):
        load_annotations(p, strict=True)


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"sentence": "a", "timestamp": [3, 2]},
            "event 0: event ends before it starts",
        ),
        ({"sentence": "a"}, "missing key 'timestamp'"),
        ({"timestamp": [1, 2]}, "missing key 'sentence'"),
        ({"sentence": "a", "timestamp": [1, 2], "score": "high"}, "score must be"),
    ],
)
def test_bad_submission(tmp_path, entry, message):
    sub = {"version": "1", "results": {"v": [entry]}, "external_data": {}}
    with pytest.raises(DensevidError, match=message):
        load_submission(write(tmp_path, sub))


def test_missing_file_and_annotation_given_as_submission(tmp_path):
    with pytest.raises(DensevidError, match="no such file"):
        load_submission(tmp_path / "nope.json")
    with pytest.raises(DensevidError, match="not a submission"):
        load_submission(write(tmp_path, ANN))


def test_match_video_ids():
    assert match_video_ids(["abc", "v_d", "x"], ["v_abc", "d"]) == {
        "abc": "v_abc",
        "v_d": "d",
    }


def test_cli_check(tmp_path, capsys):
    good = write(tmp_path, ANN, "good.json")
    bad = write(tmp_path, "{", "bad.json")
    assert main(["check", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "annotations, 2 videos, 3 events" in out
    assert "bad.json: not valid JSON" in err
