"""Failure paths a user meets, driven through the command line: exit statuses,
interrupts of a multi-worker run, damaged videos, and one line for each user error."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from densevid import __version__
from densevid.cli import main
from densevid.features.cache import has_features, load_features
from test_features_extract import make_video

SRC = str(Path(__file__).parents[1] / "src")


def write_long_video(path: Path, seconds: float, fps: int = 8) -> Path:
    """A moving square, its index at the front (faststart), so that the first part
    of a truncated copy still decodes."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast"}
        vs.codec_context.gop_size = fps
        for i in range(int(seconds * fps)):
            img = np.zeros((64, 64, 3), np.uint8)
            x = i % 48
            img[24:40, x : x + 16] = (255, 0, 0)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def truncated(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("damaged")
    whole = write_long_video(d / "whole.mp4", 20.0)
    cut = d / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.3)])
    return cut


def errors_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


# --- exit statuses -----------------------------------------------------------------


def test_extract_exit_status_counts_videos(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "bad1.mp4").write_text("not a video")
    (videos / "bad2.mp4").write_text("not a video either")
    out = tmp_path / "feats"
    # every video failed: 3, and the summary counts videos, not streams
    argv = ["extract", str(videos), "-o", str(out), "--features", "pixels,logmel"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "2 videos in" in err and "0 extracted, 0 already complete, 2 failed" in err
    # one good video beside them: partial, 1
    make_video(videos / "good.mp4")
    assert main(argv) == 1
    assert "1 extracted" in capsys.readouterr().err
    # a video whose second stream fails (no audio for logmel) is a failed video
    make_video(videos / "mute.mp4", audio_hz=None)
    for bad in ("bad1", "bad2"):
        (videos / f"{bad}.mp4").unlink()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "2 videos in" in err and "0 extracted, 1 already complete, 1 failed" in err
    assert has_features(out, "pixels", "mute")  # what succeeded is kept
    (videos / "mute.mp4").unlink()
    assert main(argv) == 0


def test_extract_refuses_an_unusable_output_place_in_one_line(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["extract", str(videos), "-o", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert errors_of(err) == [
        f"error: {a_file}: exists and is not a directory (-o takes a folder)"
    ]
    assert "Traceback" not in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["extract", str(videos), "-o", str(locked)]) == 2
        assert errors_of(capsys.readouterr().err) == [f"error: {locked}: not writable"]


def test_version():
    proc = subprocess.run(
        [sys.executable, "-m", "densevid", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"densevid {__version__}"


# --- damaged videos ----------------------------------------------------------------


def test_extract_refuses_a_truncated_video_unless_partial_is_allowed(
    truncated, tmp_path, capsys
):
    out = tmp_path / "feats"
    argv = ["extract", str(truncated), "-o", str(out), "--features", "pixels"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "cut.mp4: truncated or damaged: only" in err
    assert "--allow-partial" in err
    assert not has_features(out, "pixels", "cut")  # nothing stored
    assert main([*argv, "--allow-partial"]) == 0
    err = capsys.readouterr().err
    warnings_ = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings_) == 1 and "cut.mp4: truncated or damaged: using" in err
    assert "warnings.warn" not in err and ".py:" not in err  # no Python source line
    array, meta = load_features(out, "pixels", "cut")
    # the sidecar's duration is what could be decoded, not the container's 20 s
    assert meta["duration"] < 10.0
    assert max(meta["timestamps"]) <= meta["duration"]


def test_caption_refuses_a_truncated_video_unless_partial_is_allowed(
    truncated, tmp_path, capsys
):
    out = tmp_path / "out"
    assert main(["-q", "caption", str(truncated), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert errors_of(err)[0].startswith(f"error: {truncated}: truncated or damaged")
    assert not (out / "cut.json").exists()
    argv = ["-q", "caption", str(truncated), "-o", str(out), "--allow-partial"]
    assert main(argv) == 0
    result = json.loads((out / "cut.json").read_text())
    events = result["results"]["cut"]
    assert all(e["timestamp"][1] < 10.0 for e in events)


# --- one line for every user error -------------------------------------------------


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("places")
    (root / "empty").mkdir()
    (root / "file.txt").write_text("x")
    (root / "notjson.json").write_text("{not json")
    (root / "cfg.yaml").write_text("max_steps: [\n")
    make_video(root / "v.mp4")
    return root


USER_ERRORS = {
    "extract a missing video": ["extract", "{root}/nope.mp4", "-o", "{root}/o"],
    "extract an empty folder": ["extract", "{root}/empty", "-o", "{root}/o"],
    "extract into a file": ["extract", "{root}/v.mp4", "-o", "{root}/file.txt"],
    "extract an unknown extractor": [
        "extract",
        "{root}/v.mp4",
        "-o",
        "{root}/o",
        "--features",
        "tsp",
    ],
    "extract an option of the wrong type": [
        "extract",
        "{root}/v.mp4",
        "-o",
        "{root}/o",
        "--option",
        "pixels.tint=maybe",
    ],
    "extract a bad shard": [
        "extract",
        "{root}/v.mp4",
        "-o",
        "{root}/o",
        "--shard",
        "x",
    ],
    "caption with a model that is not one": [
        "caption",
        "{root}/v.mp4",
        "-o",
        "{root}/o",
        "--model",
        "{root}/empty",
    ],
    "caption an empty folder": ["caption", "{root}/empty", "-o", "{root}/o"],
    "caption into a file": ["caption", "{root}/v.mp4", "-o", "{root}/file.txt"],
    "caption a bad beam size": [
        "caption",
        "{root}/v.mp4",
        "-o",
        "{root}/o",
        "--beam-size",
        "0",
    ],
    "predict with a model that is not one": [
        "predict",
        "{root}/empty",
        "--features",
        "{root}/empty",
        "--annotations",
        "{root}/notjson.json",
        "-o",
        "{root}/p.json",
    ],
    "train with a config that is not YAML": ["train", "--config", "{root}/cfg.yaml"],
    "train with a missing config": ["train", "--config", "{root}/nope.yaml"],
    "train with a key that does not exist": [
        "train",
        "--set",
        "train_annotations=a",
        "--set",
        "features=f",
        "--set",
        "max_stepz=3",
    ],
    "pretrain with a bad value": [
        "pretrain",
        "--set",
        "corpus={root}/empty",
        "--set",
        "lr=fast",
    ],
    "eval a file that is not JSON": [
        "eval",
        "-s",
        "{root}/notjson.json",
        "-r",
        "{root}/notjson.json",
    ],
    "eval a missing file": ["eval", "-s", "{root}/nope.json", "-r", "{root}/nope.json"],
    "synth without a size": ["synth", "{root}/s"],
}
if not __import__("torch").cuda.is_available():
    USER_ERRORS["caption on a missing GPU"] = [
        "caption",
        "{root}/v.mp4",
        "-o",
        "{root}/o",
        "--device",
        "cuda",
    ]
    USER_ERRORS["train on a missing GPU"] = [
        "train",
        "--set",
        "train_annotations={root}/notjson.json",
        "--set",
        "features={root}/empty",
        "--set",
        "device=cuda",
    ]


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_every_user_error_is_one_line_and_exit_2(case, places, capsys):
    argv = [a.format(root=places) for a in USER_ERRORS[case]]
    assert main(["-q", *argv]) == 2, case
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert len(lines[0]) < 300, lines[0]


# --- interrupts of a real multi-worker run -----------------------------------------


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("many")
    for i in range(24):
        write_long_video(d / f"v{i:02d}.mp4", 12.0)
    return d


def start_extract(videos: Path, out: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "densevid", "-q", "extract", str(videos)]
    argv += ["-o", str(out), "--features", "pixels", "--workers", "2", "--fps", "8"]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's job
        # as a terminal starts it: a test run in the background (`nohup ... &`)
        # would pass SIGINT on ignored, and Python keeps an ignored SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def children(pid: int) -> set[int]:
    """Every descendant process of ``pid`` (from /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in found:
                    found.add(k)
                    todo.append(k)
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(p)
    return out


def wait_for_first_output(proc: subprocess.Popen, out: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if list((out / "pixels").glob("*.npy")):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    pytest.fail("no video extracted in time")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_stops_every_worker_within_seconds_and_resume_completes(
    many_videos, tmp_path
):
    out = tmp_path / "feats"
    proc = start_extract(many_videos, out)
    wait_for_first_output(proc, out, timeout=120)
    workers = children(proc.pid)
    assert workers  # the pool is running
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole job
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err
    assert took < 10, f"took {took:.1f} s to stop"
    time.sleep(0.5)
    assert not alive(workers), "workers outlived the interrupt"
    done = sorted(p.stem for p in (out / "pixels").glob("*.npy"))
    assert 0 < len(done) < 24, "interrupted before the end"
    assert not list((out / "pixels").glob(".*.tmp")), "half-written files left"
    # what was complete is kept and whole; a new run does only the rest
    for vid in done:
        assert has_features(out, "pixels", vid)
    rerun = start_extract(many_videos, out)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    assert len(list((out / "pixels").glob("*.npy"))) == 24


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_exit_when_the_main_process_is_killed(many_videos, tmp_path):
    out = tmp_path / "feats"
    proc = start_extract(many_videos, out)
    wait_for_first_output(proc, out, timeout=120)
    workers = children(proc.pid)
    assert workers
    proc.send_signal(signal.SIGKILL)  # no chance to end its workers itself
    proc.wait(timeout=10)
    end = time.monotonic() + 15
    while alive(workers) and time.monotonic() < end:
        time.sleep(0.2)
    assert not alive(workers), "workers (or the resource tracker) outlived the kill"
    assert not list((out / "pixels").glob(".*.tmp"))


# --- warnings ----------------------------------------------------------------------


def test_the_same_warning_over_many_videos_is_one_line(capsys):
    import warnings as w

    from densevid.cli import report_warnings
    from densevid.events import Event, VideoEvents
    from densevid.writers import WriteChapters

    writer = WriteChapters(".")
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        for vid in ("a", "b", "c", "d", "e", "f", "g"):
            writer.format_result(VideoEvents(vid, (), 10.0))  # no chapter: no warning
            one = VideoEvents(vid, (Event(1.0, 5.0, "the only event"),), 10.0)
            writer.format_result(one)
        w.warn("sample.mp4: something else", stacklevel=1)
        w.warn("a problem without a subject", stacklevel=1)
    report_warnings(caught)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "warning: fewer than 3 chapters, which YouTube does not show as chapters "
        "(7 inputs: a, b, c, d, e, ...)",
        "warning: sample.mp4: something else",
        "warning: a problem without a subject",
    ]


def test_eval_shows_its_progress_unless_quiet(tmp_path, capsys):
    from densevid.events import Event, VideoEvents, save_annotations, save_submission

    videos = [
        VideoEvents(f"v_{i}", (Event(1.0, 4.0, "a man talks"),), 10.0) for i in range(3)
    ]
    save_annotations(videos, tmp_path / "ref.json")
    save_submission(videos, tmp_path / "sub.json")
    argv = ["eval", "-s", str(tmp_path / "sub.json"), "-r", str(tmp_path / "ref.json")]
    argv += ["--metrics", "F1", "--no-soda"]
    assert main(argv) == 0
    assert "eval: 100%" in capsys.readouterr().err  # videos scored, a bar
    assert main(["-q", *argv]) == 0
    assert "eval: " not in capsys.readouterr().err
