"""Finding video files: the same rule for every command (densevid.files)."""

import pytest

from densevid.cli import main
from densevid.errors import DensevidError
from densevid.files import VIDEO_EXTENSIONS, find_videos


@pytest.fixture
def tree(tmp_path):
    for name in ("b.mp4", "a.MKV", "notes.txt", "sub/c.webm", ".hidden/d.mp4"):
        path = tmp_path / "videos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return tmp_path / "videos"


def test_directories_are_searched_recursively_unless_told_not_to(tree):
    assert [p.name for p in find_videos([tree])] == ["a.MKV", "b.mp4", "c.webm"]
    flat = find_videos([tree], recursive=False)
    assert [p.name for p in flat] == ["a.MKV", "b.mp4"]


def test_files_keep_their_order_and_appear_once(tree):
    got = find_videos([tree / "b.mp4", tree, tree / "b.mp4"])
    assert [p.name for p in got] == ["b.mp4", "a.MKV", "c.webm"]


def test_problems_raise_or_are_collected(tree, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DensevidError, match="no such file"):
        find_videos([tmp_path / "nope"])
    with pytest.raises(DensevidError, match="no video files"):
        find_videos([empty])
    problems: dict[str, str] = {}
    got = find_videos([tmp_path / "nope", empty, tree / "b.mp4"], problems=problems)
    assert [p.name for p in got] == ["b.mp4"]
    assert problems == {
        str(tmp_path / "nope"): "no such file or directory",
        str(empty): problems[str(empty)],
    }
    assert problems[str(empty)].startswith("no video files")


def test_one_extension_list():
    from densevid import events, shards

    assert events.VIDEO_EXTENSIONS is VIDEO_EXTENSIONS
    assert set(shards.VIDEO_EXTS) == {e.lstrip(".") for e in VIDEO_EXTENSIONS}


@pytest.mark.parametrize("command", ["caption", "extract"])
def test_caption_and_extract_take_the_same_recursion_flag(command, tree, tmp_path):
    from densevid.cli import build_parser

    argv = [command, str(tree), "-o", str(tmp_path / "out")]
    assert build_parser().parse_args(argv).recursive is True
    assert build_parser().parse_args([*argv, "--no-recursive"]).recursive is False


def test_caption_reports_what_it_could_not_find(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["-q", "caption", str(empty), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"error: {empty}: no video files" in err
