"""bench/pretrain_experiment.py, the issue-24 grid: its scheduler (dependencies,
at most --jobs at once, exclusive tasks alone, a failure skipping only its
dependents), the plan, and the whole grid's shape end to end with --quick (tiny
data and model; its densevid commands in this process, which saves each one's
start-up), resumed without rerunning anything, then plotted."""

import json
import math
import sys
import time
from pathlib import Path

import pytest

from densevid.events import load_annotations

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
try:
    import plot_pretrain_gain
    import pretrain_experiment as pe
finally:
    sys.path.pop(0)


def sleeper(log: list, name: str, live: list, started: dict, fail: bool = False):
    """A step that takes 0.3 s and notes how many steps were live when it began."""

    def step() -> None:
        live.append(name)
        started[name] = len(live)
        time.sleep(0.3)
        live.remove(name)
        log.append(name)
        if fail:
            raise RuntimeError(f"{name} broke")

    return step


def task(tmp: Path, name: str, step, after=(), exclusive=False) -> pe.Task:
    marker = tmp / name
    steps = [pe.Step(step, marker), pe.Step(marker.touch, marker)]
    return pe.Task(name, "train", name, steps, 1.0, after=after, exclusive=exclusive)


def test_runner_orders_limits_and_skips_only_what_a_failure_blocks(tmp_path):
    log, live, started = [], [], {}

    def mk(name, fail=False):
        return sleeper(log, name, live, started, fail)

    tasks = [
        task(tmp_path, "a", mk("a")),
        task(tmp_path, "b", mk("b", fail=True)),
        task(tmp_path, "c", mk("c"), after=("a",)),
        task(tmp_path, "d", mk("d"), after=("b",)),  # b fails: skipped
        task(tmp_path, "e", mk("e")),
        task(tmp_path, "x", mk("x"), after=("a",), exclusive=True),
        task(tmp_path, "f", mk("f")),
    ]
    runner = pe.Runner(tmp_path / "commands.log", jobs=2, launcher=[])
    failures = runner.run(tasks)
    assert sorted(failures) == ["b: b broke", "d: skipped: a task it needs failed"]
    assert set(log) == {"a", "b", "c", "e", "x", "f"}
    assert max(started.values()) == 2  # never more than --jobs at once
    assert log.index("a") < log.index("c") and log.index("a") < log.index("x")
    # the exclusive task ran alone, and f (after it in order) did not overtake it
    assert started["x"] == 1 and log.index("x") < log.index("f")
    # run again: only the failed task is tried, its dependent skipped again
    log.clear()
    failures = runner.run(tasks)
    assert log == ["b"] and len(failures) == 2


def test_plan_lists_every_arm_and_fits_the_budget(capsys, tmp_path):
    assert pe.main([str(tmp_path / "grid"), "--plan"]) == 0
    text = capsys.readouterr().out
    g = pe.grid_of(pe.parse_args([str(tmp_path)]))
    assert len(g.seeds) >= 2 and len(g.corpus_sizes) >= 3
    assert {0.05, 0.25, 1.0} <= set(g.fractions)
    for what in ("gen, seed 0", "den, seed 0", "both, seed 1", "+ speech"):
        assert what in text
    for n in g.corpus_sizes:
        assert f"pretrain {n} videos, both, seed 0" in text
    total = text.splitlines()[-1]
    cpu_h = float(total.split(" tasks, ")[1].split(" CPU-hours")[0])
    assert 2 <= cpu_h <= 10, total  # the issue: about 10 CPU-hours at most
    assert not (tmp_path / "grid").exists()  # --plan runs nothing


@pytest.mark.slow
def test_quick_grid_end_to_end_resumes_and_plots(tmp_path, capsys):
    out = tmp_path / "grid"
    quick = [str(out), "--quick", "--jobs", "1", "--in-process"]
    assert pe.main(quick) == 0
    res = json.loads((out / "results.json").read_text())
    rows = {(r["pretrain"] or "scratch", r["fraction"], r["speech"]): r
            for r in res["rows"]}  # fmt: skip
    want = {
        ("scratch", 0.5, False), ("pre_c20", 0.5, False),
        ("scratch", 1.0, False), ("pre_c20", 1.0, False),
        ("pre_c10", 0.5, False),
        ("pre_c20_gen", 0.5, False), ("pre_c20_den", 0.5, False),
        ("scratch", 1.0, True), ("pre_c20", 1.0, True),
        ("pre_c20_seed1", 0.5, False),
    }  # fmt: skip
    assert set(rows) == want
    for key, r in rows.items():
        assert r["seeds"] == [0, 1], key
        for which in ("test", "fresh"):
            s = r[which]["SODA_c"]
            assert s["n"] == 2 and 0 <= s["mean"] <= 1, (key, which)
            assert s["spread"] == pytest.approx(max(s["values"]) - min(s["values"]))
            assert r[which]["log_likelihood"]["mean"] < 0
        if key[0] != "scratch":  # paired with scratch, seed by seed
            assert r["gain_test"]["SODA_c"]["n"] == 2
    # one tokenizer for all: pretrained and scratch decode the same vocabulary
    pre = {p["name"]: p for p in res["pretraining"]}
    assert set(pre) == {"pre_c20", "pre_c10", "pre_c20_gen", "pre_c20_den",
                        "pre_c20_seed1"}  # fmt: skip
    assert pre["pre_c20_den"]["gen_log_likelihood"] < 0  # evaluated, not trained
    # generative only has no denoising input to score
    assert math.isnan(pre["pre_c20_gen"]["den_log_likelihood"])
    assert len(res["throughput"]) == 2
    assert all(t["videos_per_s"] > 0 for t in res["throughput"])
    md = (out / "results.md").read_text()
    for title in (
        "Pretrained against scratch",
        "Gain against corpus size",
        "Which objective",
        "Narration as encoder input",
        "Pretraining runs",
        "Pretraining throughput",
        "Commands",
    ):
        assert f"### {title}" in md  # fmt: skip
    assert "for S in 0 1; do python -m densevid -q train" in md
    assert "--set seed=$S" in md and "pre_c20_seed1/last" in md
    # fresh set: its own seed, test split only
    fresh = out / "data" / "fresh"
    assert len(load_annotations(fresh / "test.json")) == 4
    assert not load_annotations(fresh / "train.json")
    # resumed: nothing runs again, the same table comes out
    log = (out / "commands.log").read_text()
    capsys.readouterr()
    assert pe.main(quick) == 0
    assert (out / "commands.log").read_text() == log
    assert (out / "results.md").read_text() == md
    assert "to run: 0 of" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    image = plot_pretrain_gain.plot(res, tmp_path / "gain.png")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = plot_pretrain_gain.gain_series(res, "SODA_c", "test")
    assert [n for n, _ in series[0.5]] == [10, 20]
