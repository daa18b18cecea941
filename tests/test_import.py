"""densevid import: small files built in each peer's layout, with real ActivityNet
and YouCook2 ids and durations, imported and checked row by row: the times each
format gives its rows, ids paired with the annotations', the videos missing on
either side, resume, exit statuses, one-line errors, pickle safety, and a model
trained on imported features."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from densevid.cli import main
from densevid.features.cache import (
    feature_paths,
    has_features,
    load_features,
    load_speech,
    load_speech_meta,
)
from densevid.importers import FORMATS, import_features
from densevid.importers.formats import row_times

# --- the layouts, as the peers' loaders read them ---------------------------------


def subset(shared: Path, name: str, n: int, skip: int = 0) -> dict:
    """n real videos (ids, durations, events) of a reference annotation file."""
    data = json.loads((shared / name).read_text())
    return {k: data[k] for k in list(data)[skip : skip + n]}


def write_json(obj: dict, path: Path) -> Path:
    path.write_text(json.dumps(obj))
    return path


def rows(n: int, dim: int, seed: int, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(dtype)


def n_rows(duration: float, stride: float) -> int:
    """Rows a strided extractor makes of a video: whole clips only."""
    return max(1, int(duration / stride))


def write_tsp(path: Path, videos: dict[str, np.ndarray]) -> Path:
    """TSP's release: one HDF5 file per split, a (T, 512) dataset per video id."""
    with h5py.File(path, "w") as f:
        for vid, x in videos.items():
            f[vid] = x
    return path


def write_c3d(path: Path, videos: dict[str, np.ndarray]) -> Path:
    """sub_activitynet_v1-3.c3d.hdf5: <id>/c3d_features, (T, 500)."""
    with h5py.File(path, "w") as f:
        for vid, x in videos.items():
            f.create_group(vid)["c3d_features"] = x
    return path


def write_mdvc(path: Path, videos: dict[str, dict[str, np.ndarray]]) -> Path:
    """MDVC: <id>/i3d_features/{rgb,flow} in the video file, <id>/vggish_features
    in the audio file."""
    with h5py.File(path, "w") as f:
        for vid, parts in videos.items():
            g = f.create_group(vid)
            for key, x in parts.items():
                g[key] = x
    return path


@pytest.fixture
def anet(shared_data, tmp_path) -> tuple[dict, Path]:
    """Four real ActivityNet validation videos and their annotation file."""
    ann = subset(shared_data, "activitynet/val_1.json", 4)
    return ann, write_json(ann, tmp_path / "ann.json")


def cli_args(fmt: str, sources: list, out: Path, ann: Path) -> list[str]:
    """densevid import's command line, quiet."""
    return [
        "-q",
        "import",
        fmt,
        *map(str, sources),
        "-o",
        str(out),
        "--annotations",
        str(ann),
    ]


def sidecar(root: Path, stream: str, vid: str) -> dict:
    return json.loads(feature_paths(root, stream, vid)[1].read_text())


# --- tsp: stride timing, ids, the report, resume ----------------------------------


def test_tsp_rows_get_their_clip_centres_and_the_annotated_ids(anet, tmp_path, capsys):
    ann, ann_path = anet
    ids = list(ann)
    stride = 16 / 15
    src = {
        vid: rows(n_rows(ann[vid]["duration"], stride), 512, i)
        for i, vid in enumerate(ids[:3])
    }
    src["v_notAnnotatd"] = rows(5, 512, 9)
    h5 = write_tsp(tmp_path / "tsp.h5", src)
    out = tmp_path / "feats"
    assert (
        main(
            [
                "-q",
                "import",
                "tsp",
                str(h5),
                "-o",
                str(out),
                "--annotations",
                str(ann_path),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "3 videos" in err and "3 imported" in err
    assert f"1 annotated video without features: {ids[3]}" in err
    assert (
        "1 video of the features without annotation (not imported): v_notAnnotatd"
        in err
    )
    for vid in ids[:3]:
        array, meta = load_features(out, "tsp", vid)
        np.testing.assert_array_equal(array, src[vid])
        n = len(src[vid])
        # clip i covers [16i/15, 16(i+1)/15): its centre
        np.testing.assert_allclose(meta["timestamps"], (16 * np.arange(n) + 8) / 15)
        assert meta["duration"] == ann[vid]["duration"]
        assert meta["duration_from"] == "annotations"
        assert meta["timing"] == "stride" and meta["format"] == "tsp"
        assert meta["fps"] == pytest.approx(15 / 16)
        assert meta["source"] == [str(h5.resolve())] and meta["source_id"] == vid
    assert not (out / "tsp" / "v_notAnnotatd.npy").exists()


def test_a_rerun_skips_complete_videos_and_redoes_a_half_written_one(anet, tmp_path):
    ann, ann_path = anet
    src = {vid: rows(20, 512, i) for i, vid in enumerate(ann)}
    h5 = write_tsp(tmp_path / "tsp.h5", src)
    out = tmp_path / "feats"
    first = import_features("tsp", [h5], out, annotations=[ann_path], verbose=False)
    assert len(first.imported_videos) == 4
    # a run killed between the array and its sidecar leaves an orphan .npy
    victim = sorted(ann)[1]
    feature_paths(out, "tsp", victim)[1].unlink()
    again = import_features("tsp", [h5], out, annotations=[ann_path], verbose=False)
    assert again.imported_videos == {victim}
    assert again.n_complete_before == 3
    assert "1 imported, 3 already complete, 0 failed" in again.summary()
    assert has_features(out, "tsp", victim)


def test_without_annotations_ids_are_kept_and_the_rows_give_the_duration(tmp_path):
    h5 = write_tsp(tmp_path / "tsp.h5", {"v_abc": rows(30, 512, 0)})
    out = tmp_path / "feats"
    report = import_features("tsp", [h5], out, verbose=False)
    assert report.imported_videos == {"v_abc"}
    meta = sidecar(out, "tsp", "v_abc")
    assert meta["duration"] == pytest.approx(30 * 16 / 15)
    assert meta["duration_from"] == "rows"


def test_rows_running_past_the_duration_are_kept_at_its_end_and_warned(anet, tmp_path):
    ann, ann_path = anet
    vid = next(iter(ann))
    too_many = n_rows(ann[vid]["duration"], 16 / 15) * 3  # another format's rows
    h5 = write_tsp(tmp_path / "tsp.h5", {vid: rows(too_many, 512, 0)})
    with pytest.warns(UserWarning, match="1 video' rows run more than a row past"):
        report = import_features(
            "tsp", [h5], tmp_path / "f", annotations=[ann_path], verbose=False
        )
    assert report.overrun == [vid]
    times = sidecar(tmp_path / "f", "tsp", vid)["timestamps"]
    assert max(times) == pytest.approx(ann[vid]["duration"])


# --- exit statuses and one-line errors --------------------------------------------


def test_one_malformed_video_fails_alone_with_one_line_naming_the_file(
    anet, tmp_path, capsys
):
    ann, ann_path = anet
    ids = list(ann)
    src = {vid: rows(10, 512, i) for i, vid in enumerate(ids)}
    src[ids[2]] = rows(10, 400, 2)  # another network's width
    h5 = write_tsp(tmp_path / "tsp.h5", src)
    argv = cli_args("tsp", [str(h5)], str(tmp_path / "f"), str(ann_path))
    assert main(argv) == 1
    err = capsys.readouterr().err
    why = f"{h5}:{ids[2]}: expected shape (T, 512), found (10, 400)"
    assert f"failed {ids[2]} [tsp]: {why}" in err
    assert "Traceback" not in err
    assert "3 imported" in err


def test_every_video_malformed_is_exit_status_3(anet, tmp_path, capsys):
    ann, ann_path = anet
    src = {vid: np.full((4, 512), np.nan, np.float32) for vid in ann}
    h5 = write_tsp(tmp_path / "tsp.h5", src)
    argv = cli_args("tsp", [str(h5)], str(tmp_path / "f"), str(ann_path))
    assert main(argv) == 3
    assert "4 rows with NaN or inf" in capsys.readouterr().err


@pytest.mark.parametrize(
    "what, expect",
    [
        ("not_hdf5", "not a readable HDF5 file"),
        ("missing", "no such file"),
        ("c3d_as_tsp", "no entry has the tsp layout"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_error_line_and_nothing_written(
    anet, tmp_path, capsys, what, expect
):
    ann, ann_path = anet
    path = tmp_path / "src.h5"
    if what == "not_hdf5":
        path.write_text("hello")
    elif what == "c3d_as_tsp":
        write_c3d(path, {vid: rows(5, 500, 0) for vid in ann})
    out = tmp_path / "f"
    argv = cli_args("tsp", [str(path)], str(out), str(ann_path))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}") and expect in err[0]
    assert not (out / "tsp").exists()


def test_no_source_video_in_the_annotations_is_an_error(anet, tmp_path, capsys):
    _, ann_path = anet
    h5 = write_tsp(tmp_path / "tsp.h5", {"v_someotherid": rows(5, 512, 0)})
    argv = cli_args("tsp", [str(h5)], str(tmp_path / "f"), str(ann_path))
    assert main(argv) == 2
    assert "no video of" in capsys.readouterr().err


def test_unknown_format_and_formats_list(capsys):
    assert main(["-q", "import", "s3d", "x.h5", "-o", "f"]) == 2
    assert "unknown feature format 's3d'; formats: tsp, c3d" in capsys.readouterr().err
    assert main(["import", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in FORMATS)


def test_a_directory_written_with_other_timing_is_refused(anet, tmp_path, capsys):
    ann, ann_path = anet
    h5 = write_tsp(tmp_path / "tsp.h5", {vid: rows(8, 512, 0) for vid in ann})
    out = tmp_path / "f"
    import_features("tsp", [h5], out, annotations=[ann_path], verbose=False)
    js = feature_paths(out, "tsp", sorted(ann)[0])[1]  # the sidecar it reads
    meta = json.loads(js.read_text())
    meta["config"]["stride_s"] = 2.0
    js.write_text(json.dumps(meta))
    argv = cli_args("tsp", [str(h5)], str(out), str(ann_path))
    assert main(argv) == 2
    assert "written otherwise (stride_s" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


# --- ids ---------------------------------------------------------------------------


def test_ids_with_and_without_v_match_and_a_double_is_warned_with_a_count(
    anet, tmp_path
):
    ann, ann_path = anet
    a, b, c, _ = list(ann)
    # the source spells b without its prefix; c twice: exact and bare (ambiguous)
    src = {
        a: rows(6, 512, 0),
        b[2:]: rows(6, 512, 1),
        c: rows(6, 512, 2),
        c[2:]: rows(6, 512, 3),
    }
    h5 = write_tsp(tmp_path / "tsp.h5", src)
    with pytest.warns(UserWarning, match=r"1 video of the features could stand for"):
        report = import_features(
            "tsp", [h5], tmp_path / "f", annotations=[ann_path], verbose=False
        )
    assert report.imported_videos == {a, b, c}
    assert report.ambiguous == [c[2:]]
    assert sidecar(tmp_path / "f", "tsp", b)["source_id"] == b[2:]
    np.testing.assert_array_equal(load_features(tmp_path / "f", "tsp", c)[0], src[c])


# --- c3d: rows spread evenly over the annotated duration ---------------------------


def test_c3d_rows_spread_over_the_duration_and_a_group_without_its_key_fails(
    anet, tmp_path, capsys
):
    ann, ann_path = anet
    ids = list(ann)
    src = {vid: rows(17 + i, 500, i) for i, vid in enumerate(ids[:3])}
    h5 = write_c3d(tmp_path / "sub_activitynet_v1-3.c3d.hdf5", src)
    with h5py.File(h5, "a") as f:
        f.create_group(ids[3])["fc7"] = rows(5, 500, 0)  # the wrong key
    out = tmp_path / "f"
    argv = cli_args("c3d", [str(h5)], str(out), str(ann_path))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"failed {ids[3]} [c3d]: {h5}: group '{ids[3]}' has no 'c3d_features'" in err
    for vid, x in src.items():
        array, meta = load_features(out, "c3d", vid)
        np.testing.assert_array_equal(array, x)
        d = ann[vid]["duration"]
        np.testing.assert_allclose(
            meta["timestamps"], (np.arange(len(x)) + 0.5) * d / len(x)
        )
        assert meta["timing"] == "even" and meta["fps"] == pytest.approx(len(x) / d)


def test_formats_without_timing_need_annotations(tmp_path, capsys):
    h5 = write_c3d(tmp_path / "c3d.hdf5", {"v_x": rows(5, 500, 0)})
    assert main(["-q", "import", "c3d", str(h5), "-o", str(tmp_path / "f")]) == 2
    assert (
        "c3d rows carry no time of their own: give --annotations"
        in capsys.readouterr().err
    )


# --- tsn: PDVC's pairs of .npy files, one stream -----------------------------------


def test_tsn_pairs_become_one_stream_under_the_prefixed_ids(anet, tmp_path, capsys):
    ann, ann_path = anet
    ids = list(ann)
    bare = [vid[2:] for vid in ids]
    root = tmp_path / "tsn"
    (root / "validation").mkdir(parents=True)
    parts = {}
    for i, vid in enumerate(ids[:2]):  # PDVC: key[2:13] + '_resnet.npy'
        res, bn = rows(40 + i, 2048, i), rows(40 + i, 1024, 10 + i)
        np.save(root / "validation" / f"{vid[2:]}_resnet.npy", res)
        np.save(root / "validation" / f"{vid[2:]}_bn.npy", bn)
        parts[vid] = np.concatenate([res, bn], axis=1)
    np.save(root / f"{ids[2][2:]}_resnet.npy", rows(9, 2048, 5))  # its _bn is lost
    np.save(root / f"{ids[3][2:]}_resnet.npy", rows(9, 2048, 6))
    np.save(root / f"{ids[3][2:]}_bn.npy", rows(8, 1024, 7))  # a row short
    out = tmp_path / "f"
    argv = cli_args("tsn", [str(root)], str(out), str(ann_path))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert (
        f"failed {ids[2]} [tsn]: {root / bare[2]}_resnet.npy: no {bare[2]}_bn.npy"
        in err
    )
    assert f"failed {ids[3]} [tsn]: the parts of 'tsn' differ in rows" in err
    for vid, x in parts.items():
        array, meta = load_features(out, "tsn", vid)
        assert array.shape == (len(x), 3072)
        np.testing.assert_array_equal(array, x)  # ResNet first, then BN-Inception
        assert meta["timing"] == "even" and meta["source_id"] == vid[2:]
        assert len(meta["source"]) == 2


# --- i3d and vggish: BMT's .npy files ----------------------------------------------


def test_bmt_i3d_and_vggish_rows_are_timed_by_their_stacks(anet, tmp_path, capsys):
    ann, ann_path = anet
    ids = list(ann)
    i3d, vgg = tmp_path / "i3d_25fps_stack64step64_2stream_npy", tmp_path / "vggish_npy"
    i3d.mkdir()
    vgg.mkdir()
    for i, vid in enumerate(ids):
        d = ann[vid]["duration"]
        n = n_rows(d, 2.56)
        np.save(i3d / f"{vid}_rgb.npy", rows(n, 1024, i))
        if i != 3:
            np.save(i3d / f"{vid}_flow.npy", rows(n, 1024, 10 + i))
        np.save(vgg / f"{vid}.npy", rows(n_rows(d, 0.96), 128, 20 + i))
    out = tmp_path / "f"
    argv = cli_args("i3d", [str(i3d)], str(out), str(ann_path))
    assert main(argv) == 0
    assert (
        f"1 video without i3d_flow in the sources: {ids[3]}" in capsys.readouterr().err
    )
    argv = cli_args("vggish", [str(vgg)], str(out), str(ann_path))
    assert main(argv) == 0
    vid = ids[0]
    rgb = sidecar(out, "i3d_rgb", vid)["timestamps"]
    np.testing.assert_allclose(rgb, 2.56 * np.arange(len(rgb)) + 1.28)
    assert sidecar(out, "i3d_flow", vid)["timestamps"] == rgb
    audio = sidecar(out, "vggish", vid)["timestamps"]
    np.testing.assert_allclose(audio, 0.96 * np.arange(len(audio)) + 0.48)
    assert has_features(out, "i3d_rgb", ids[3]) and not has_features(
        out, "i3d_flow", ids[3]
    )


# --- mdvc: HDF5, video and audio files ---------------------------------------------


def test_mdvc_video_and_audio_files_and_a_video_without_audio(anet, tmp_path, capsys):
    ann, ann_path = anet
    ids = list(ann)
    video, audio = {}, {}
    for i, vid in enumerate(ids):
        n = n_rows(ann[vid]["duration"], 0.96)
        video[vid] = {
            "i3d_features/rgb": rows(n, 1024, i),
            "i3d_features/flow": rows(n, 1024, 10 + i),
        }
        if i != 1:  # MDVC: "some videos doesn't have audio"
            audio[vid] = {"vggish_features": rows(n + 1, 128, 20 + i)}
    v = write_mdvc(
        tmp_path / "sub_activitynet_v1-3.i3d_25fps_stack24step24_2stream.hdf5", video
    )
    a = write_mdvc(tmp_path / "sub_activitynet_v1-3.vggish.hdf5", audio)
    out = tmp_path / "f"
    argv = cli_args("mdvc", [str(v), str(a)], str(out), str(ann_path))
    assert main(argv) == 0
    assert (
        f"1 video without mdvc_vggish in the sources: {ids[1]}"
        in capsys.readouterr().err
    )
    for stream, key in (
        ("mdvc_rgb", "i3d_features/rgb"),
        ("mdvc_flow", "i3d_features/flow"),
    ):
        array, meta = load_features(out, stream, ids[0])
        np.testing.assert_array_equal(array, video[ids[0]][key])
        np.testing.assert_allclose(
            meta["timestamps"], 0.96 * np.arange(len(array)) + 0.48
        )
        assert meta["source"] == [str(v.resolve())]
    assert sidecar(out, "mdvc_vggish", ids[0])["source"] == [str(a.resolve())]
    assert not has_features(out, "mdvc_vggish", ids[1])


# --- clip-pth: VidChapters' .pth and ASR pickle, YouCook2 ids ------------------------


@pytest.fixture
def yc2(shared_data, tmp_path) -> tuple[dict, Path]:
    ann = subset(shared_data, "youcook2/yc2_val.json", 3)
    return ann, write_json(ann, tmp_path / "yc2.json")


def test_clip_pth_and_its_asr_under_the_annotations_ids(yc2, tmp_path):
    ann, ann_path = yc2
    ids = list(ann)
    # VidChapters keys its YouCook2 files by the 11-character YouTube id
    feats = {vid[2:]: torch.randn(int(ann[vid]["duration"]), 768).half() for vid in ids}
    pth = tmp_path / "clipvitl14.pth"
    torch.save(feats, pth)
    d0 = ann[ids[0]]["duration"]
    asr = {
        ids[0][2:]: {
            "start": [1.0, 5.5, d0 + 3],
            "end": [4.0, 9.0, d0 + 5],
            "text": [" hello", "  ", "after the end"],
        },
        ids[1][2:]: {
            "segments": [{"start": 2.0, "end": 3.0, "text": "chop the onion"}]
        },
    }
    pkl = tmp_path / "youcook2_asr_align_proc.pkl"
    pkl.write_bytes(pickle.dumps(asr))
    out = tmp_path / "f"
    report = import_features(
        "clip-pth", [pth], out, annotations=[ann_path], asr=pkl, verbose=False
    )
    assert report.imported_videos == set(ids)
    assert report.missing_streams == {"asr_whisperx": [ids[2]]}
    for vid in ids:
        array, meta = load_features(out, "clip_vitl14", vid)
        assert array.dtype == np.float16  # kept as VidChapters stores it
        np.testing.assert_array_equal(array, feats[vid[2:]].numpy())
        np.testing.assert_allclose(meta["timestamps"], np.arange(len(array)))
    # blank sentences dropped, a sentence after the end dropped
    assert load_speech(out, "asr_whisperx", ids[0]) == [
        {"start": 1.0, "end": 4.0, "text": "hello"}
    ]
    assert load_speech(out, "asr_whisperx", ids[1])[0]["text"] == "chop the onion"
    assert load_speech_meta(out, "asr_whisperx", ids[0])["duration"] == d0


class Hostile:
    """Unpickling this would create a file: a stand-in for running any code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickles_run_no_code_without_allow_pickle(yc2, tmp_path, capsys):
    ann, ann_path = yc2
    vid = next(iter(ann))
    marker = tmp_path / "code_ran"
    pkl = tmp_path / "asr.pkl"
    pkl.write_bytes(pickle.dumps({vid[2:]: Hostile(str(marker))}))
    pth = tmp_path / "clip.pth"
    torch.save({vid[2:]: torch.zeros(3, 768)}, pth)
    base = [
        "-q",
        "import",
        "clip-pth",
        str(pth),
        "-o",
        str(tmp_path / "f"),
        "--annotations",
        str(ann_path),
    ]
    assert main([*base, "--asr", str(pkl)]) == 2
    err = capsys.readouterr().err
    assert "pathlib" in err and "--allow-pickle" in err and "Traceback" not in err
    assert not marker.exists()
    # a .pth of numpy arrays needs full unpickling too: refused, then allowed
    np_pth = tmp_path / "np.pth"
    torch.save({vid[2:]: np.zeros((3, 768), np.float32)}, np_pth)
    base[3] = str(np_pth)
    assert main(base) == 2
    assert "--allow-pickle if you trust the file" in capsys.readouterr().err
    assert main([*base, "--allow-pickle"]) == 0


def test_the_formats_timing_rules():
    assert FORMATS["tsp"].timing == "stride" and FORMATS["c3d"].timing == "even"
    np.testing.assert_allclose(row_times(FORMATS["vggish"], 3, 100), [0.48, 1.44, 2.4])
    np.testing.assert_allclose(
        row_times(FORMATS["tsn"], 4, 2.0), [0.25, 0.75, 1.25, 1.75]
    )
    np.testing.assert_allclose(row_times(FORMATS["clip-pth"], 3, 10), [0, 1, 2])


# --- end to end: imported TSP features train a model that predicts ----------------


def test_a_model_trains_on_imported_tsp_features_and_predicts(shared_data, tmp_path):
    from densevid.events import load_submission
    from test_train import tiny_config

    train = subset(shared_data, "activitynet/train.json", 6)
    val = dict(list(train.items())[:2])
    write_json(train, tmp_path / "train.json")
    write_json(val, tmp_path / "val.json")
    src = {
        vid[2:]: rows(n_rows(a["duration"], 16 / 15), 512, i, np.float16)
        for i, (vid, a) in enumerate(train.items())
    }
    h5 = write_tsp(tmp_path / "r2plus1d_34-tsp_on_activitynet-train_features.h5", src)
    feats = tmp_path / "features"
    argv = cli_args("tsp", [str(h5)], str(feats), str(tmp_path / "train.json"))
    assert main(argv) == 0
    cfg = tiny_config(tmp_path, "run", max_steps=3).to_dict()
    config = write_json(cfg, tmp_path / "c.yaml")
    sets = ["--set", "model.visual_features=tsp", "--set", "max_steps=3"]
    assert main(["-q", "train", "--config", str(config), *sets]) == 0
    preds = tmp_path / "preds.json"
    predict = [
        "-q",
        "predict",
        str(tmp_path / "run" / "last"),
        "--features",
        str(feats),
    ]
    predict += ["--annotations", str(tmp_path / "val.json"), "-o", str(preds)]
    assert main([*predict, "--method", "greedy", "--max-length", "16"]) == 0
    assert set(load_submission(preds)) == set(val)


def test_several_annotation_files_and_the_official_database_format(anet, tmp_path):
    ann, _ = anet
    a, b, c, _ = list(ann)
    first = write_json({a: ann[a]}, tmp_path / "one.json")
    # the official release's shape: {"database": {id without v_: {...}}}
    official = {
        "database": {b[2:]: {"duration": ann[b]["duration"], "annotations": []}}
    }
    second = write_json(official, tmp_path / "official.json")
    h5 = write_tsp(tmp_path / "tsp.h5", {v: rows(6, 512, 0) for v in (a, b, c)})
    out = tmp_path / "f"
    report = import_features(
        "tsp", [h5], out, annotations=[first, second], verbose=False
    )
    assert report.imported_videos == {a, b[2:]}
    assert report.no_annotation == [c]
    assert sidecar(out, "tsp", b[2:])["duration"] == ann[b]["duration"]


def test_a_file_that_is_no_torch_file_is_one_line(yc2, tmp_path, capsys):
    _, ann_path = yc2
    junk = tmp_path / "clipvitl14.pth"
    junk.write_text("not a checkpoint")
    assert main(cli_args("clip-pth", [junk], tmp_path / "f", ann_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {junk}: not a")
