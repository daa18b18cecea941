import json
import math

import pytest

from densevid.cli import main
from densevid.errors import DensevidError
from densevid.events import (
    Event,
    SubmissionWarning,
    VideoEvents,
    is_submission,
    load_annotations,
    load_submission,
    match_video_ids,
    resolve_video_ids,
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
    """Other toolkits' shapes are read, each kind warned about once; ids are kept
    as written (evaluation matches them to the references)."""
    bare = {"v_a.mp4": [{"caption": "hi", "timestamp": [1, 2], "score": 0.3}]}
    with pytest.warns(SubmissionWarning) as caught:
        videos = load_submission(write(tmp_path, bare))
    assert videos == {"v_a.mp4": VideoEvents("v_a.mp4", (Event(1.0, 2.0, "hi", 0.3),))}
    path = str(tmp_path / "f.json")
    assert [str(w.message) for w in caught] == [
        f"{path}: no 'results' wrapper (the official scorer needs it): read as a "
        "bare {video_id: [events]} mapping",
        f"{path}: 1 event with 'caption' for 'sentence' read under the official "
        "names; first: video v_a.mp4, event 0",
    ]


def test_submission_keeps_odd_times_as_written(tmp_path):
    entries = [
        {"sentence": "a", "timestamp": [-0.001, 2]},
        {"sentence": "b", "timestamp": [5, 3]},
        {"sentence": "", "timestamp": [4, 4]},
    ]
    sub = {"version": "1", "results": {"v": entries}, "external_data": {}}
    with pytest.warns(SubmissionWarning) as caught:
        events = load_submission(write(tmp_path, sub))["v"].events
    assert [(e.start, e.end, e.text) for e in events] == [
        (-0.001, 2.0, "a"),
        (5.0, 3.0, "b"),
        (4.0, 4.0, ""),
    ]
    assert len(caught) == 4  # negative, reversed, zero-length, empty sentence
    assert events[1] == Event.as_given(5.0, 3.0, "b")
    with pytest.raises(DensevidError, match="ends before it starts"):
        Event(5.0, 3.0, "b")  # models' events stay checked


def test_is_submission():
    assert is_submission({"results": {}})
    assert is_submission({"version": "1", "result": {}})  # a misspelt submission
    assert is_submission({"v_a": [], "v_b": [{"sentence": "x"}]})
    assert not is_submission(ANN)
    assert not is_submission({})
    assert not is_submission([1])


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
        ({"sentence": "a"}, "video v, event 0: missing key 'timestamp'"),
        ({"timestamp": [1, 2]}, "missing key 'sentence'"),
        ({"sentence": None, "timestamp": [1, 2]}, "sentence must be a string"),
        ({"sentence": "a", "timestamp": [1, 2, 3]}, "timestamp must be"),
        ({"sentence": "a", "timestamp": [1, math.inf]}, "end must be finite"),
        ({"sentence": "a", "timestamp": ["x", 2]}, "start must be a number"),
        (["a", [1, 2]], "an event must be a JSON object"),
    ],
)
def test_bad_submission(tmp_path, entry, message):
    """What no scorer can read is one error naming the file, video and event."""
    sub = {"version": "1", "results": {"v": [entry]}, "external_data": {}}
    with pytest.raises(DensevidError, match=message):
        load_submission(write(tmp_path, sub))


@pytest.mark.parametrize(
    "content, message",
    [
        ({"results": []}, "'results' must be an object"),
        ({"results": {"v": {"sentence": "a"}}}, "video v: expected a list of events"),
        ({"version": "1", "result": {}}, "a submission without 'results'"),
    ],
)
def test_bad_submission_shape(tmp_path, content, message):
    with pytest.raises(DensevidError, match=message):
        load_submission(write(tmp_path, content))


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
    assert match_video_ids(["abc.mp4", "v_d.MKV", "e.webm"], ["v_abc", "v_d"]) == {
        "abc.mp4": "v_abc",
        "v_d.MKV": "v_d",
    }


@pytest.mark.parametrize(
    "predicted, reference, mapping, ambiguous",
    [
        # an exact id wins; the loose one for the same video is not scored
        (["v_a", "a.mp4"], ["v_a"], {"v_a": "v_a"}, ["a.mp4"]),
        # two loose ids for one video: neither
        (["a", "v_a.mp4"], ["v_a"], {}, ["a", "v_a.mp4"]),
        # one loose id that fits two reference videos: not scored
        (["a.mp4"], ["a", "v_a"], {}, ["a.mp4"]),
        # exact ids always match, whatever else is there
        (["a", "v_a"], ["a", "v_a"], {"a": "a", "v_a": "v_a"}, []),
    ],
)
def test_resolve_video_ids_only_unambiguous(predicted, reference, mapping, ambiguous):
    assert resolve_video_ids(predicted, reference) == (mapping, ambiguous)


def test_cli_check(tmp_path, capsys):
    good = write(tmp_path, ANN, "good.json")
    bad = write(tmp_path, "{", "bad.json")
    assert main(["check", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "annotations, 2 videos, 3 events; ActivityNet Captions layout" in out
    assert "bad.json: not valid JSON" in err
