"""The on-disk feature cache: round trips, completeness, atomicity."""

import json

import numpy as np
import pytest

from densevid.errors import DensevidError
from densevid.features.cache import (
    clean_partial,
    feature_paths,
    has_features,
    list_videos,
    load_features,
    load_speech,
    load_speech_meta,
    save_features,
    save_speech,
    speech_path,
)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_features_round_trip(tmp_path, dtype):
    arr = np.arange(12, dtype=dtype).reshape(4, 3) / 7
    meta = {"fps": 2.0, "duration": 2.0, "timestamps": np.arange(4) / 2.0}
    save_features(tmp_path, "pixels", "v1", arr, meta)
    got, side = load_features(tmp_path, "pixels", "v1")
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, arr)
    assert side["extractor"] == "pixels"
    assert (side["n_frames"], side["dim"]) == (4, 3)
    assert side["timestamps"] == [0.0, 0.5, 1.0, 1.5]
    assert has_features(tmp_path, "pixels", "v1")
    assert list_videos(tmp_path, "pixels") == ["v1"]


def test_float64_is_stored_as_float32(tmp_path):
    save_features(tmp_path, "x", "v", np.ones((2, 2)), {"fps": 1, "duration": 2})
    assert load_features(tmp_path, "x", "v")[0].dtype == np.float32


def test_incomplete_or_inconsistent_is_not_complete(tmp_path):
    arr = np.zeros((3, 2), np.float32)
    save_features(tmp_path, "x", "v", arr, {"fps": 1, "duration": 3})
    npy, js = feature_paths(tmp_path, "x", "v")
    js.unlink()  # killed between the array and its sidecar
    assert not has_features(tmp_path, "x", "v")
    with pytest.raises(DensevidError, match="densevid extract"):
        load_features(tmp_path, "x", "v")
    save_features(tmp_path, "x", "v", arr, {"fps": 1, "duration": 3})
    np.save(npy, np.zeros((5, 2), np.float32))  # array replaced behind its back
    assert not has_features(tmp_path, "x", "v")
    with pytest.raises(DensevidError, match="disagrees"):
        load_features(tmp_path, "x", "v")
    npy.write_bytes(b"garbage")
    assert not has_features(tmp_path, "x", "v")


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(DensevidError, match=r"\[T, D\]"):
        save_features(tmp_path, "x", "v", np.zeros(3), {"fps": 1, "duration": 1})
    with pytest.raises(DensevidError, match="duration"):
        save_features(tmp_path, "x", "v", np.zeros((1, 1)), {"fps": 1})
    with pytest.raises(DensevidError, match="timestamps"):
        save_features(
            tmp_path,
            "x",
            "v",
            np.zeros((2, 1)),
            {"fps": 1, "duration": 1, "timestamps": [0.0]},
        )
    with pytest.raises(DensevidError, match="plain file name"):
        save_features(
            tmp_path, "x", "../v", np.zeros((1, 1)), {"fps": 1, "duration": 1}
        )


def test_speech_round_trip_and_bare_list(tmp_path):
    segs = [
        {"start": 2.0, "end": 3.5, "text": "second"},
        {"start": 0.5, "end": 1.0, "text": "first"},
    ]
    save_speech(tmp_path, "asr", "v", segs, {"duration": 4.0, "engine": "x"})
    assert has_features(tmp_path, "asr", "v")
    got = load_speech(tmp_path, "asr", "v")
    assert [s["text"] for s in got] == ["first", "second"]
    assert load_speech_meta(tmp_path, "asr", "v")["engine"] == "x"
    speech_path(tmp_path, "subtitles", "w").parent.mkdir(parents=True)
    speech_path(tmp_path, "subtitles", "w").write_text(json.dumps(segs))
    assert load_speech(tmp_path, "subtitles", "w")[0]["text"] == "first"
    assert has_features(tmp_path, "subtitles", "w")
    with pytest.raises(DensevidError, match="ends before"):
        save_speech(tmp_path, "asr", "v", [{"start": 2, "end": 1, "text": "x"}])


def test_no_temporary_files_left(tmp_path):
    save_features(tmp_path, "x", "v", np.zeros((1, 1)), {"fps": 1, "duration": 1})
    (tmp_path / "x" / ".v.npy.abc.tmp").write_bytes(b"half")
    assert clean_partial(tmp_path, "x") == 1
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["v.json", "v.npy"]
