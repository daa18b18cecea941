"""Annotation files in the layouts datasets release, read wherever densevid reads
annotations: YouCook2's official file (one subset at a time) and ViTT's JSON lines
(chapter starts, durations from elsewhere), recognised by shape.

The YouCook2 files are built from ../shared/data/youcook2 (PDVC's conversion, real
YouTube ids and durations), rewritten into the official layout, so reading them
back must give PDVC's numbers. The ViTT rules use small hand-made files."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from densevid.annotations import (
    ACTIVITYNET,
    VITT,
    YOUCOOK2,
    split_subset,
    video_durations,
)
from densevid.cli import main
from densevid.errors import DensevidError
from densevid.events import (
    AnnotationWarning,
    Event,
    load_annotations,
    read_annotation_file,
    read_json,
)
from densevid.features.cache import save_features
from densevid.metrics.submission import load_references

N_TRAIN, N_VAL = 3, 2


# --- YouCook2 ----------------------------------------------------------------------


def official_youcook2(pdvc: dict[str, dict], subset: str) -> dict[str, dict]:
    """PDVC's ActivityNet-format videos back in the official ``database`` layout:
    bare YouTube ids, the fields the release has, segments with their ids."""
    out = {}
    for vid, ann in pdvc.items():
        youtube_id = vid.removeprefix("v_")
        out[youtube_id] = {
            "duration": ann["duration"],
            "subset": subset,
            "recipe_type": "113",
            "video_url": f"https://www.youtube.com/watch?v={youtube_id}",
            "annotations": [
                {"segment": span, "id": i, "sentence": text}
                for i, (span, text) in enumerate(
                    zip(ann["timestamps"], ann["sentences"], strict=True)
                )
            ],
        }
    return out


@pytest.fixture
def yc2(shared_data, tmp_path) -> tuple[Path, dict[str, dict], dict[str, dict]]:
    """(youcookii_annotations_trainval.json with 3 training and 2 validation
    videos, PDVC's training videos, PDVC's validation videos)."""
    folder = shared_data / "youcook2"
    train = json.loads((folder / "yc2_train.json").read_text())
    val = json.loads((folder / "yc2_val.json").read_text())
    train = dict(list(train.items())[:N_TRAIN])
    val = dict(list(val.items())[:N_VAL])
    database = {
        **official_youcook2(train, "training"),
        **official_youcook2(val, "validation"),
    }
    path = tmp_path / "youcookii_annotations_trainval.json"
    path.write_text(json.dumps({"database": database}))
    return path, train, val


def as_pdvc(videos: dict) -> dict[str, dict]:
    """Videos read by densevid in PDVC's form, ids with its 'v_' prefix."""
    return {
        f"v_{vid}": {
            "duration": v.duration,
            "timestamps": [[e.start, e.end] for e in v.events],
            "sentences": [e.text for e in v.events],
        }
        for vid, v in videos.items()
    }


def test_youcook2_subset_by_suffix_and_keyword(yc2):
    """Each subset reads as PDVC and VidChapters convert it: the duration, the
    segments and the sentences, nothing of the other subset."""
    path, train, val = yc2
    by_suffix = load_annotations(f"{path}#training")
    assert as_pdvc(by_suffix) == train
    assert as_pdvc(load_annotations(path, subset="validation")) == val
    assert load_annotations(f"{path}#validation", subset="validation").keys() == {
        vid.removeprefix("v_") for vid in val
    }
    found = read_annotation_file(f"{path}#training")
    assert (found.layout, found.subset) == (YOUCOOK2, "training")
    assert found.subsets == {"training": N_TRAIN, "validation": N_VAL}


def test_youcook2_with_several_subsets_needs_one(yc2):
    path, _, _ = yc2
    with pytest.raises(DensevidError) as caught:
        load_annotations(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: a YouCook2 file with 2 subsets, ")
    assert "training (3 videos), validation (2 videos)" in message
    assert f"{path}#training" in message and "--subset training" in message


@pytest.mark.parametrize(
    "subset, message",
    [
        ("testing", "no subset 'testing'; the file holds training \\(3 videos\\), "),
        ("", "no subset name after '#'"),
    ],
)
def test_youcook2_unknown_subset(yc2, subset, message):
    path, _, _ = yc2
    with pytest.raises(DensevidError, match=message):
        load_annotations(f"{path}#{subset}")


def test_suffix_and_keyword_must_agree(yc2):
    path, _, _ = yc2
    with pytest.raises(DensevidError, match="names subset 'training', but subset"):
        load_annotations(f"{path}#training", subset="validation")


def test_youcook2_file_with_one_subset_needs_none(tmp_path):
    database = {
        "abc": {
            "duration": 10.0,
            "subset": "validation",
            "annotations": [{"segment": [1, 2], "id": 0, "sentence": "cut"}],
        }
    }
    path = tmp_path / "yc.json"
    path.write_text(json.dumps({"database": database}))
    assert load_annotations(path)["abc"].events == (Event(1.0, 2.0, "cut"),)


def test_references_and_configs_name_a_subset(yc2):
    """Every reader goes through load_annotations, so a subset suffix works for
    eval's references as for train configs and predict."""
    path, _, val = yc2
    (refs,) = load_references([f"{path}#validation"])
    assert as_pdvc(refs) == val


def test_a_file_named_with_a_hash_is_a_file(tmp_path):
    path = tmp_path / "a#b.json"
    path.write_text(
        json.dumps({"v": {"duration": 3, "timestamps": [], "sentences": []}})
    )
    assert split_subset(path) == (str(path), None)
    assert list(load_annotations(path)) == ["v"]


def test_a_subset_of_a_layout_without_subsets(tmp_path):
    path = tmp_path / "anet.json"
    path.write_text(
        json.dumps({"v": {"duration": 3, "timestamps": [], "sentences": []}})
    )
    with pytest.raises(DensevidError, match="ActivityNet Captions annotations hold no"):
        load_annotations(path, subset="training")


@pytest.mark.parametrize(
    "entry, message",
    [
        ([1], "video abc: expected an object, got a list"),
        ({"duration": 5, "annotations": []}, "video abc: no 'subset'"),
        ({"subset": "training", "annotations": []}, "missing key 'duration'"),
        ({"subset": "training", "duration": 5}, "'annotations' must be a list"),
        (
            {"subset": "training", "duration": 5, "annotations": [{"sentence": "a"}]},
            "video abc, event 0: missing key 'segment'",
        ),
        (
            {"subset": "testing", "duration": 5, "annotations": [{"segment": [1, 2]}]},
            "missing key 'sentence' \\(YouCook2 releases its testing subset without",
        ),
        (
            {
                "subset": "training",
                "duration": 5,
                "annotations": [{"segment": [1], "sentence": "a"}],
            },
            "video abc, event 0: timestamp must be",
        ),
    ],
)
def test_bad_youcook2(tmp_path, entry, message):
    path = tmp_path / "yc.json"
    path.write_text(json.dumps({"database": {"abc": entry}}))
    with pytest.raises(DensevidError, match=message) as caught:
        load_annotations(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


# --- ViTT --------------------------------------------------------------------------


def chapters(*pairs: tuple[int, str]) -> list[dict]:
    return [{"timestamp": ms, "tag": tag} for ms, tag in pairs]


def write_vitt(path: Path, records: list[dict]) -> Path:
    """ViTT-annotations.json: one annotation set per line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# The README's example set, and a video of two annotators.
FMTP = {
    "id": "FmTp",
    "annotations": chapters(
        (260, "Opening"),
        (16000, "Displaying technique"),
        (23990, "Showing foot positioning"),
        (55530, "Demonstrating crossover"),
        (114100, "Closing"),
    ),
}
TWO_SETS = [
    {"id": "Qx7Z", "annotations": chapters((0, "intro"), (30000, "recipe"))},
    {"id": "Qx7Z", "annotations": chapters((2000, "opening"), (31000, "cooking"))},
]
DURATIONS = {"FmTp": 120.5, "Qx7Z": 60.0}


def test_vitt_chapters_end_where_the_next_starts(tmp_path):
    path = write_vitt(tmp_path / "ViTT-annotations.json", [FMTP, *TWO_SETS])
    found = read_annotation_file(path, durations=DURATIONS)
    assert found.layout == VITT
    assert "2 videos and 3 annotation sets in the file" in found.describe()
    videos = found.videos
    assert list(videos) == ["FmTp", "0_Qx7Z", "1_Qx7Z"]
    fmtp = videos["FmTp"]
    assert fmtp.duration == 120.5
    assert [(e.start, e.end) for e in fmtp.events] == [
        (0.26, 16.0),
        (16.0, 23.99),
        (23.99, 55.53),
        (55.53, 114.1),
        (114.1, 120.5),
    ]
    assert fmtp.events[0].text == "Opening"
    assert videos["1_Qx7Z"].events == (
        Event(2.0, 31.0, "opening"),
        Event(31.0, 60.0, "cooking"),
    )


def test_vitt_needs_durations(tmp_path):
    path = write_vitt(tmp_path / "ViTT-annotations.json", [FMTP])
    with pytest.raises(DensevidError) as caught:
        load_annotations(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ViTT annotations give chapter starts only")
    assert "durations=" in message and "--durations DIR" in message
    assert "\n" not in message
    with pytest.raises(DensevidError, match="none of its 1 video has a duration"):
        load_annotations(path, durations={"other": 5.0})


def test_one_line_vitt_file(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(FMTP))
    assert list(load_annotations(path, durations=DURATIONS)) == ["FmTp"]


def test_vitt_drops_counted_once_per_kind(tmp_path):
    """VidChapters' rules: a video with more than 3 sets goes, then each set with an
    empty tag, a chapter starting past the duration, or starts that do not
    increase (the last start at the duration leaves an empty last chapter); each
    kind is one warning that counts them."""
    ok = chapters((0, "a"), (10000, "b"))
    records = [
        {"id": "keep", "annotations": ok},
        *[{"id": "many", "annotations": ok} for _ in range(4)],
        {"id": "tags", "annotations": chapters((0, "a"), (1000, " "))},
        {"id": "tags", "annotations": chapters((0, ""), (1000, "b"))},
        {"id": "late", "annotations": chapters((0, "a"), (70000, "b"))},
        {"id": "order", "annotations": chapters((5000, "a"), (5000, "b"))},
        {"id": "atend", "annotations": chapters((0, "a"), (60000, "b"))},
        {"id": "none", "annotations": []},
        {"id": "nodur", "annotations": ok},
    ]
    path = write_vitt(tmp_path / "ViTT-annotations.json", records)
    durations = {
        vid: 60.0 for vid in ("keep", "many", "tags", "late", "order", "atend", "none")
    }
    with pytest.warns(AnnotationWarning) as caught:
        videos = load_annotations(path, durations=durations)
    assert list(videos) == ["keep"]
    assert [str(w.message) for w in caught] == [
        f"{path}: 1 video without a duration (nodur): dropped (a last chapter has "
        "no end without one)",
        f"{path}: 1 video with more than 3 annotation sets (many): dropped, as "
        "VidChapters drops them (ViTT includes them for studies of annotator "
        "agreement)",
        f"{path}: 1 annotation set without chapters: dropped (ViTT's release "
        "leaves such sets out); first: video none, set 0",
        f"{path}: 2 annotation sets with an empty tag: dropped, as VidChapters "
        "drops them; first: video tags, set 0",
        f"{path}: 1 annotation set with a chapter starting past the video's "
        "duration: dropped, as VidChapters drops them; first: video late, set 0",
        f"{path}: 2 annotation sets whose chapter starts do not increase: dropped, "
        "as VidChapters drops them; first: video order, set 0",
    ]


def test_vitt_id_mapping(tmp_path):
    """YouTube-8M ids become YouTube ids; durations are looked up by those; ids
    the mapping lacks are dropped, as VidChapters drops them."""
    path = write_vitt(tmp_path / "ViTT-annotations.json", [FMTP, *TWO_SETS])
    mapping = tmp_path / "id_mapping.json"
    mapping.write_text(json.dumps({"FmTp": "yt_fmtp"}))
    with pytest.warns(AnnotationWarning, match="1 ViTT video not in the id mapping"):
        videos = load_annotations(
            path, durations={"yt_fmtp": 120.5}, id_mapping=mapping
        )
    assert list(videos) == ["yt_fmtp"]
    with pytest.raises(DensevidError, match="looked up by YouTube ids"):
        load_annotations(path, durations={"FmTp": 9.0}, id_mapping={"FmTp": "x"})
    mapping.write_text(json.dumps({"FmTp": 3}))
    with pytest.raises(DensevidError, match="id FmTp maps to 3, not a YouTube id"):
        load_annotations(path, durations=DURATIONS, id_mapping=mapping)


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"id": "a", "annotations": []}', "[1]"], "record 2: expected a ViTT"),
        (
            ['{"id": "a", "annotations": []}', '{"annotations": []}'],
            "record 2: missing or non-text 'id'",
        ),
        (
            ['{"id": "a", "annotations": [{"timestamp": 0}]}', "{}"],
            "record 1 \\(video a\\), chapter 0: missing key 'tag'",
        ),
        (
            ['{"id": "a", "annotations": [{"timestamp": "x", "tag": "t"}]}', "{}"],
            "chapter 0: timestamp must be milliseconds, got 'x'",
        ),
        (
            ['{"id": "a", "annotations": {}}', "{}"],
            "'annotations' must be a list of chapters",
        ),
        (['{"id": "a", "annotations": []}', "{oops"], "not valid JSON lines \\(line 2"),
    ],
)
def test_bad_vitt(tmp_path, lines, message):
    path = tmp_path / "ViTT-annotations.json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DensevidError, match=message) as caught:
        load_annotations(path, durations={"a": 5.0})
    assert str(caught.value).startswith(f"{path}: ")


def test_json_lines_only_when_asked(tmp_path):
    path = write_vitt(tmp_path / "v.json", [FMTP, FMTP])
    assert read_json(path, lines=True) == [FMTP, FMTP]
    with pytest.raises(DensevidError, match="not valid JSON"):
        read_json(path)


# --- durations ---------------------------------------------------------------------


def write_video(path: Path, seconds: int, fps: int = 10) -> Path:
    """A grey H.264 video of ``seconds`` s, for probing."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        image = np.full((32, 32, 3), 128, np.uint8)
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_durations_from_videos_and_from_features(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "FmTp.mp4", 2)
    write_video(videos / "Qx7Z.mkv", 1)
    probed = video_durations(videos)
    assert probed.keys() == {"FmTp", "Qx7Z"}
    assert probed["FmTp"] == pytest.approx(2.0, abs=0.15)
    features = tmp_path / "features"
    for vid, duration in DURATIONS.items():
        save_features(
            features, "clip", vid, np.zeros((3, 4)), {"fps": 1, "duration": duration}
        )
    assert video_durations(features) == DURATIONS
    (tmp_path / "empty").mkdir()
    with pytest.raises(DensevidError, match="no videos and no feature sidecars"):
        video_durations(tmp_path / "empty")
    with pytest.raises(DensevidError, match="not a directory"):
        video_durations(tmp_path / "nope")


# --- densevid check ----------------------------------------------------------------


def test_check_summarises_each_layout(yc2, tmp_path, capsys):
    path, train, val = yc2
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    n_train = sum(len(a["sentences"]) for a in train.values())
    n_val = sum(len(a["sentences"]) for a in val.values())
    assert out == [
        f"{path}: annotations, YouCook2 layout with 2 subsets; name one to use it "
        f"({path}#training, or --subset training)",
        f"  training: {N_TRAIN} videos, {n_train} events",
        f"  validation: {N_VAL} videos, {n_val} events",
    ]
    assert main(["check", str(path), "--subset", "validation"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: annotations, {N_VAL} videos, {n_val} events; YouCook2 layout, "
        "subset validation of: training (3 videos), validation (2 videos)"
    ]
    vitt = write_vitt(tmp_path / "ViTT-annotations.json", [FMTP, *TWO_SETS])
    features = tmp_path / "features"
    for vid, duration in DURATIONS.items():
        save_features(
            features, "clip", vid, np.zeros((3, 4)), {"fps": 1, "duration": duration}
        )
    assert main(["check", str(vitt), "--durations", str(features)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{vitt}: annotations, 3 videos, 9 events; ViTT layout; 2 videos and 3 "
        "annotation sets in the file"
    ]


def test_check_errors_are_one_line(yc2, tmp_path, capsys):
    path, _, _ = yc2
    assert main(["check", str(path), "-o", str(tmp_path / "out.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: a YouCook2 file with 2 subsets")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out.json").exists()
    vitt = write_vitt(tmp_path / "ViTT-annotations.json", [FMTP])
    assert main(["check", str(vitt)]) == 1
    err = capsys.readouterr().err
    assert "ViTT annotations give chapter starts only" in err
    assert len(err.splitlines()) == 1
    assert main(["check", str(vitt), "--durations", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_check_converts_once(yc2, tmp_path, capsys):
    """-o writes what was read in the ActivityNet format, which then reads as
    the same videos wherever a file is named."""
    path, train, _ = yc2
    out = tmp_path / "yc2_train.json"
    assert main(["check", f"{path}#training", "-o", str(out)]) == 0
    assert (
        f"wrote {out}: 3 videos, ActivityNet Captions format" in capsys.readouterr().out
    )
    assert load_annotations(out) == load_annotations(path, subset="training")
    assert read_annotation_file(out).layout == ACTIVITYNET
    short = {"id": "FmTp", "annotations": chapters((0, "intro"), (1000, "end"))}
    vitt = write_vitt(tmp_path / "ViTT-annotations.json", [short, *TWO_SETS])
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "yt_fmtp.mp4", 2)
    mapping = tmp_path / "id_mapping.json"
    mapping.write_text(json.dumps({"FmTp": "yt_fmtp", "Qx7Z": "yt_qx7z"}))
    converted = tmp_path / "vitt.json"
    args = ["check", str(vitt), "--durations", str(videos), "--id-mapping"]
    assert main([*args, str(mapping), "-o", str(converted)]) == 0
    printed = capsys.readouterr().out
    assert "  warning: " + f"{vitt}: 1 video without a duration (yt_qx7z)" in printed
    (video,) = load_annotations(converted).values()
    assert video.video_id == "yt_fmtp"
    assert video.duration == pytest.approx(2.0, abs=0.15)
    assert video.events == (
        Event(0.0, 1.0, "intro"),
        Event(1.0, video.duration, "end"),
    )


def test_vitt_with_real_ids(yc2, tmp_path, capsys):
    """ViTT sets over YouCook2's real videos (YouTube-8M ids standing in, mapped
    to the real YouTube ids), durations from a FEATURES directory: converted once
    with check -o, the chapters start at the segments' starts and each ends where
    the next starts, the last at the real duration."""
    _, train, _ = yc2
    records, mapping, features = [], {}, tmp_path / "features"
    for k, (vid, ann) in enumerate(train.items()):
        youtube_id, yt8m_id = vid.removeprefix("v_"), f"Y{k:03d}"
        mapping[yt8m_id] = youtube_id
        starts = sorted({span[0] for span in ann["timestamps"]})
        tags = [f"step {i}" for i in range(len(starts))]
        records.append(
            {
                "id": yt8m_id,
                "annotations": chapters(
                    *((int(t * 1000), g) for t, g in zip(starts, tags, strict=True))
                ),
            }
        )
        save_features(
            features,
            "clip",
            youtube_id,
            np.zeros((2, 4)),
            {"fps": 1, "duration": ann["duration"]},
        )
    vitt = write_vitt(tmp_path / "ViTT-annotations.json", records)
    (tmp_path / "id_mapping.json").write_text(json.dumps(mapping))
    out = tmp_path / "vitt_train.json"
    args = ["check", str(vitt), "--durations", str(features)]
    args += ["--id-mapping", str(tmp_path / "id_mapping.json"), "-o", str(out)]
    assert main(args) == 0
    assert "warning" not in capsys.readouterr().out
    back = load_annotations(out)
    assert list(back) == [vid.removeprefix("v_") for vid in train]
    for vid, ann in train.items():
        video = back[vid.removeprefix("v_")]
        starts = sorted({span[0] for span in ann["timestamps"]})
        assert video.duration == ann["duration"]
        assert [e.start for e in video.events] == starts
        assert [e.end for e in video.events] == [*starts[1:], ann["duration"]]


def test_activitynet_files_read_as_before(shared_data, capsys):
    path = shared_data / "youcook2" / "yc2_val.json"
    found = read_annotation_file(path)
    assert (found.layout, found.subset, found.subsets) == (ACTIVITYNET, None, {})
    assert len(found.videos) == 457
    assert sum(len(v) for v in found.videos.values()) == 3492
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.startswith(
        f"{path}: annotations, 457 videos, 3492 events; ActivityNet Captions layout"
    )
