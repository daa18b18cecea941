"""Model inputs: a feature array's blocks, frames sampled over a window, one
window's item, and batches (densevid.inputs)."""

import numpy as np
import pytest
import torch

from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.inputs import (
    IGNORE_INDEX,
    collate,
    join_streams,
    make_item,
    model_inputs,
    sample_frames,
    sample_rows,
    select_blocks,
)
from densevid.text import TimeTokenizer, train_tokenizer


def test_select_blocks_by_the_sidecar_layout():
    array = np.arange(12.0).reshape(2, 6)
    meta = {
        "layout": {
            "rgb": {"start": 0, "stop": 3},
            "edges": {"start": 3, "stop": 4},
            "blobs": {"start": 4, "stop": 6},
        }
    }
    assert select_blocks(array, meta, [], "x") is array
    got = select_blocks(array, meta, ["blobs", "rgb"], "x")
    assert got.tolist() == [[4, 5, 0, 1, 2], [10, 11, 6, 7, 8]]
    with pytest.raises(
        DensevidError, match=r"feats/pixels: no feature block \['motion'\]"
    ):
        select_blocks(array, meta, ["motion"], "feats/pixels")
    with pytest.raises(DensevidError, match="has no blocks"):
        select_blocks(array, {}, ["rgb"], "feats/clip")


def test_sample_rows_uniform_and_repeated():
    times = (np.arange(10) + 0.5) * 1.0
    assert sample_rows(times, 0, 10, 5).tolist() == [1, 3, 5, 7, 9]
    # fewer rows than slots: each row fills the slots of its own stretch of time
    assert sample_rows(times, 0, 10, 20).tolist() == [i // 2 for i in range(20)]
    assert sample_rows(times, 2.0, 4.0, 4).tolist() == [2, 2, 3, 3]
    assert sample_rows(times, 20, 30, 3).tolist() == [9, 9, 9]  # never empty


def test_interpolated_frames_show_the_video_at_each_slots_time():
    times = (np.arange(10) + 0.5) * 1.0  # rows at 0.5, 1.5, ... 9.5 s
    array = np.stack([times, -times], 1).astype(np.float16)  # a row holds its time
    # 5 slots over 10 s stand at 1, 3, 5, 7, 9 s: the nearest rows are at 1.5, 3.5 ...
    nearest = sample_frames(array, times, 0, 10, 5)
    assert nearest[:, 0].tolist() == [1.5, 3.5, 5.5, 7.5, 9.5]
    blended = sample_frames(array, times, 0, 10, 5, interpolate=True)
    assert blended.dtype == np.float32
    np.testing.assert_allclose(
        blended, np.stack([[1, 3, 5, 7, 9], [-1, -3, -5, -7, -9]], 1)
    )
    # slots before the first row or after the last one hold that row
    edges = sample_frames(array, times, 0, 10, 20, interpolate=True)[:, 0]
    assert edges[0] == 0.5 and edges[-1] == 9.5
    np.testing.assert_allclose(edges[1:-1], (np.arange(1, 19) + 0.5) * 0.5)
    # a crop window, and a video of one row
    np.testing.assert_allclose(
        sample_frames(array, times, 2.0, 4.0, 4, interpolate=True)[:, 0],
        [2.25, 2.75, 3.25, 3.75],
    )
    one = sample_frames(array[:1], times[:1], 0, 1, 3, interpolate=True)
    assert one.shape == (3, 2) and (one[:, 0] == 0.5).all()


def test_make_item_samples_each_stream_over_its_window(tmp_path):
    texts = ["before", "inside"]
    tok = train_tokenizer(texts, tmp_path, vocab_size=60, n_time_tokens=10)
    tt = TimeTokenizer(tok, 10)
    cfg = ModelConfig(
        n_frames=4, n_time_tokens=10, visual_features="pixels", speech_features="asr"
    )
    times = np.arange(20) + 0.5  # a row per second, holding its time
    streams = {
        "pixels": (times[:, None].astype(np.float32), times),
        "asr": [
            {"start": 1.0, "end": 3.0, "text": "before"},
            {"start": 11.0, "end": 12.0, "text": "inside"},
        ],
    }
    item = make_item(cfg, tt, streams, "v", 10.0, 14.0)
    assert item["video_id"] == "v" and item["duration"] == 4.0
    # frames stand at 10.5, 11.5, 12.5, 13.5 s: the window, not the whole video
    np.testing.assert_allclose(item["visual"][:, 0], [10.5, 11.5, 12.5, 13.5])
    assert item["labels"] == []
    words = tok.decode(item["speech_ids"])
    assert "inside" in words and "before" not in words


def test_collate_pads_with_masks_and_ignored_labels():
    items = [
        {
            "video_id": f"v{n}",
            "duration": float(n),
            "visual": np.ones((n, 2), np.float32),
            "labels": list(range(n)),
        }
        for n in (1, 3)
    ]
    batch = collate(items, pad_id=0)
    assert batch["visual"].shape == (2, 3, 2)
    assert batch["visual_mask"].tolist() == [[True, False, False], [True] * 3]
    assert batch["labels"].tolist() == [[0, IGNORE_INDEX, IGNORE_INDEX], [0, 1, 2]]
    assert set(model_inputs(batch)) == {"visual", "visual_mask"}
    assert batch["durations"].dtype == torch.float32


def test_join_streams_resamples_onto_the_first_streams_rows():
    t_a = np.array([0.5, 1.5, 2.5, 3.5])  # 1 row/s
    a = np.stack([t_a, t_a], 1).astype(np.float32)
    t_b = np.array([1.0, 3.0])  # 0.5 row/s, a row holds its time
    b = t_b[:, None].astype(np.float32)
    rows, times = join_streams([(a, t_a), (b, t_b)])
    assert rows.shape == (4, 3) and times is t_a
    np.testing.assert_allclose(rows[:, :2], a)
    # b at 0.5 and 3.5 s is held at its end rows; between, interpolated
    np.testing.assert_allclose(rows[:, 2], [1.0, 1.5, 2.5, 3.0])
