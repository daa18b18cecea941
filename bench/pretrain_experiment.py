"""Does pretraining on narrated videos help, by how much, and what drives it: the
issue-24 grid, resumable, from one command.

On the synthetic benchmark, whose narration (.vtt beside each video) plays the role
of speech in real videos, with today's recipe (``configs/synthetic.yaml``: temporal
convolution, interpolated frames, concatenated items; ``pixels`` with ``tint`` and
``timing``). Scratch and pretrained runs share one tokenizer, trained on the main
corpus's transcripts, so only the initial weights differ and per-token
log-likelihoods compare across every row.

Data (``OUT/data``): the annotated set (seed 0); a fresh test set from an unused seed
(``--fresh-seed``, test split only); one narrated corpus from another unused seed
(``--corpus-seed``, annotations never read) packed in tar shards, of which each
corpus size takes the first shards, so the corpora are nested.

Pretraining arms (``OUT/runs/pre_*``, once each): every corpus size with both
objectives; at the main size also generative only, denoising only
(``generative_weight`` / ``denoise_weight`` = 0) and further pretraining seeds (to
show how much one pretraining varies).

Fine-tuning rows (``OUT/runs/ft_*``), every one for each ``--seeds`` (fine-tuning
seeds; the labelled subset is the same for all seeds, so pretrained and scratch
pair up per seed):

1. scratch and pretrained (main corpus) at each ``--fractions`` of the annotated
   training split;
2. each corpus size at ``--corpus-fractions``;
3. each objective at ``--objective-fraction``;
4. scratch and pretrained with the narration as encoder input
   (``model.speech_features=subtitles``) at ``--speech-fractions``;
5. the other pretraining seeds at ``--objective-fraction``.

Each run's ``best`` checkpoint is scored (``densevid predict``, beam 4, then
``densevid eval``) on the test split and on the fresh set. Last, a throughput sweep
(alone on the machine): ``densevid pretrain`` from the main corpus's shards at
several batch sizes, threads and loader workers.

Every step is a ``densevid`` command (logged in ``OUT/commands.log``) skipped when
its output exists, so running the same command again continues an interrupted grid.
``--jobs`` tasks run at once (data tasks alone, with ``--jobs`` workers). The
defaults are the grid of docs/results.md: 4.4 CPU-hours, 2.2 h on two cores
(fine-tuning at a tenth of the recipe's 6,000 steps, to fit). The tables
(mean and spread over seeds, each row's command) go to ``OUT/results.md`` and
``OUT/results.json``; ``bench/plot_pretrain_gain.py`` draws the gain against corpus
size from the latter.

    .venv/bin/python bench/pretrain_experiment.py runs/pretrain_grid --plan
    .venv/bin/python bench/pretrain_experiment.py runs/pretrain_grid --jobs 2
    .venv/bin/python bench/pretrain_experiment.py /tmp/pilot --quick   # minutes
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densevid.events import load_annotations, save_annotations
from densevid.synth import split_sizes

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = str(ROOT / "configs" / "synthetic.yaml")
PRETRAIN_CONFIG = str(ROOT / "configs" / "pretrain_synthetic.yaml")
METRICS = ("SODA_c", "CIDEr", "METEOR", "F1")
SETS = ("test", "fresh")  # the annotated set's test split; the fresh set
PIXELS_OPTIONS = ["--option", "pixels.tint=true", "--option", "pixels.timing=true"]
OBJECTIVES = {  # name -> (generative_weight, denoise_weight)
    "both": (1.0, 1.0),
    "gen": (1.0, 0.0),
    "den": (0.0, 1.0),
}
# CPU-seconds per unit, measured here (docs/results.md, "The grid"; user + sys time
# of short runs while other jobs shared the machine, rounded up); the plan's
# estimate is their sum over the tasks
COST_S = {
    "synth_video": 0.16,  # densevid synth, default preset (20-60 s videos)
    "extract_video": 0.6,  # pixels with tint and timing + subtitles
    "pretrain_step": 0.45,  # batch 16, configs/pretrain_synthetic.yaml's model
    "train_step": 0.35,  # batch 16, configs/synthetic.yaml
    "validation": 8.0,  # one validation during training (100 videos, greedy)
    "score_video": 0.15,  # densevid predict (beam 4) + densevid eval, per video
    "task": 8.0,  # starting a densevid process: imports, model, features
}
QUICK_MODEL = {
    "model.d_model": 32,
    "model.d_ff": 64,
    "model.d_kv": 8,
    "model.n_heads": 4,
    "model.n_layers": 1,
    "model.n_decoder_layers": 1,
    "model.n_temporal_layers": 1,
    "model.n_temporal_heads": 4,
    "model.n_frames": 32,
}
# (batch size, torch threads, loader workers) of the throughput sweep
THROUGHPUT = [(16, 1, 0), (16, 1, 1), (16, 2, 0), (16, 2, 1), (32, 2, 1), (64, 2, 1)]


# --- tasks and their scheduling ------------------------------------------------------


@dataclass
class Step:
    """One densevid command (or a Python callable), skipped when ``output`` exists;
    its stdout goes to ``stdout`` when given."""

    cmd: list[str] | Callable[[], None]
    output: Path
    stdout: Path | None = None

    def done(self) -> bool:
        return self.output.exists()


@dataclass
class Task:
    """Steps run in order; ``after`` names the tasks it needs finished first.
    ``exclusive``: runs alone (it uses every core, or measures the machine)."""

    name: str
    kind: str  # data, pretrain, train, throughput
    what: str  # one line for the plan
    steps: list[Step]
    cpu_s: float
    after: tuple[str, ...] = ()
    exclusive: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def done(self) -> bool:
        return all(s.done() for s in self.steps)


def densevid(*args: str) -> list[str]:
    return [sys.executable, "-m", "densevid", "-q", *args]


def sets(overrides: dict[str, object]) -> list[str]:
    out: list[str] = []
    for k, v in overrides.items():
        out += ["--set", f"{k}={v}"]
    return out


def quote(cmd: list[str]) -> str:
    """The command as a shell line, this interpreter written as ``python``."""
    words = ["python" if c == sys.executable else c for c in cmd]
    return " ".join(shlex.quote(w) for w in words)


class Runner:
    """Runs tasks ``jobs`` at a time in dependency order; a failed task's dependents
    are skipped and the others go on."""

    def __init__(
        self, log: Path, jobs: int, launcher: list[str], in_process: bool = False
    ) -> None:
        self.log, self.jobs, self.launcher = log, jobs, launcher
        self.in_process = in_process
        self.lock = threading.Lock()

    def call(self, cmd: list[str]) -> tuple[int, str, str]:
        """Runs a densevid command: exit status, stdout, stderr."""
        if not self.in_process:
            # one thread unless a run sets its own: a spare thread on a busy core
            # spins (densevid predict on 4 videos: 48 CPU-s with 2, 4 with 1)
            env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **os.environ}
            proc = subprocess.run(
                self.launcher + cmd, capture_output=True, text=True, cwd=ROOT, env=env
            )
            return proc.returncode, proc.stdout, proc.stderr
        from densevid.cli import main as densevid_main

        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = densevid_main(cmd[3:])  # after "python -m densevid"
        return rc, out.getvalue(), err.getvalue()

    def run_step(self, task: Task, step: Step) -> None:
        if step.done():
            return
        if callable(step.cmd):
            step.cmd()
            return
        line = quote(step.cmd)
        t0 = time.perf_counter()
        rc, stdout, stderr = self.call(step.cmd)
        with self.lock, open(self.log, "a", encoding="utf-8") as f:
            f.write(f"$ {line}\n{stdout}\n{stderr}\n")
        if rc != 0:
            raise RuntimeError(f"failed ({rc}): {line}\n{stderr[-2000:]}")
        if step.stdout is not None:
            step.stdout.write_text(stdout, encoding="utf-8")
        print(f"  {task.name}: {time.perf_counter() - t0:.0f} s  $ {line}", flush=True)

    def run_task(self, task: Task) -> None:
        for step in task.steps:
            self.run_step(task, step)

    def run(self, tasks: list[Task]) -> list[str]:
        """Runs every task not done; returns the failures, one line each."""
        pending = [t for t in tasks if not t.done()]
        finished = {t.name for t in tasks if t.done()}
        failed: dict[str, str] = {}
        running: dict[str, threading.Thread] = {}
        errors: dict[str, BaseException] = {}
        exclusive = False

        def work(task: Task) -> None:
            try:
                self.run_task(task)
            except BaseException as e:  # reported by the scheduler below
                errors[task.name] = e

        while pending or running:
            for name, thread in list(running.items()):
                if not thread.is_alive():
                    del running[name]
                    exclusive = False if not running else exclusive
                    if name in errors:
                        failed[name] = str(errors[name]).splitlines()[0]
                        print(f"FAILED {name}: {errors[name]}", flush=True)
                    else:
                        finished.add(name)
            for task in list(pending):
                if any(a in failed for a in task.after):
                    pending.remove(task)
                    failed[task.name] = "skipped: a task it needs failed"
                    continue
                if len(running) >= self.jobs or exclusive:
                    break
                if not all(a in finished for a in task.after):
                    continue
                if task.exclusive and running:
                    break  # waits for the machine to itself, ahead of the others
                pending.remove(task)
                exclusive = task.exclusive
                thread = threading.Thread(target=work, args=(task,), daemon=True)
                running[task.name] = thread
                thread.start()
            if (
                pending
                and not running
                and not any(all(a in finished for a in t.after) for t in pending)
            ):
                for t in pending:
                    failed[t.name] = "never ready: " + ", ".join(t.after)
                break
            time.sleep(0.2)
        return [f"{name}: {why}" for name, why in failed.items()]


# --- the grid ------------------------------------------------------------------------


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def pct(fraction: float) -> str:
    return f"{round(fraction * 100):03d}"


def finished_run(run_dir: Path, steps: int) -> Path:
    """A run's completion marker: ``last`` at ``steps`` (a killed run has a ``last``
    too, at an earlier step: its command resumes it)."""
    return run_dir / "last" / f".step{steps}"


def mark_finished(run_dir: Path, steps: int) -> Callable[[], None]:
    def mark() -> None:
        state = json.loads((run_dir / "last" / "training_state.json").read_text())
        if state["step"] < steps:
            raise RuntimeError(f"{run_dir}: stopped at step {state['step']}")
        finished_run(run_dir, steps).touch()

    return mark


def subset(train: Path, fraction: float, seed: int = 0) -> Path:
    """The first ``fraction`` of the training videos in a seeded random order (the
    same subset for every fine-tuning seed)."""
    path = train.with_name(f"train_{pct(fraction)}.json")
    if not path.exists():
        videos = list(load_annotations(train).values())
        random.Random(seed).shuffle(videos)
        n = max(1, round(len(videos) * fraction))
        save_annotations(sorted(videos[:n], key=lambda v: v.video_id), path)
    return path


def corpus_dir(shards: Path, n_videos: int) -> Path:
    """A directory of links to the first ``n_videos / shard_size`` shards."""
    return shards.parent / f"corpus_{n_videos}"


def link_corpus(shards: Path, n_videos: int, shard_size: int) -> Callable[[], None]:
    def link() -> None:
        tars = sorted(shards.glob("*.tar"))
        n = n_videos // shard_size
        if len(tars) < n:
            raise RuntimeError(f"{shards}: {len(tars)} shards, {n} needed")
        target = corpus_dir(shards, n_videos)
        tmp = target.with_name(target.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for tar in tars[:n]:
            link = tmp / tar.name
            if not link.exists():
                link.symlink_to(tar.resolve())
        tmp.rename(target)

    return link


@dataclass
class Grid:
    """What the options ask for, as numbers."""

    videos: int
    fresh_videos: int
    corpus_sizes: list[int]
    main_corpus: int
    shard_size: int
    seeds: list[int]
    fractions: list[float]
    corpus_fractions: list[float]
    objective_fraction: float
    speech_fractions: list[float]
    pretrain_seeds: list[int]
    pretrain_steps: int
    train_steps: int
    throughput_steps: int
    preset: str
    corpus_seed: int
    fresh_seed: int
    workers: int
    extra: dict[str, object]  # every pretrain and train run
    train_extra: dict[str, object]  # fine-tuning runs only
    pretrain_extra: dict[str, object]  # pretraining runs only


def pretrain_name(corpus: int, objective: str, seed: int) -> str:
    name = f"pre_c{corpus}"
    if objective != "both":
        name += f"_{objective}"
    if seed:
        name += f"_seed{seed}"
    return name


def build(g: Grid, out: Path) -> list[Task]:
    """Every task of the grid, in the order they are started."""
    data = out / "data"
    ann, fresh, pre = data / "synth", data / "fresh", data / "corpus"
    shards = pre / "features" / "webdataset"
    n_split = split_sizes(g.videos)
    cost = COST_S
    tasks: list[Task] = []

    # data: each alone, with --workers processes; a command's marker is touched
    # once it returns (synth and extract skip what they made, so rerunning resumes)
    def data_task(name, cmd, marker, cpu_s, what, after=()) -> Task:
        steps = [Step(cmd, marker), Step(marker.touch, marker)]
        return Task(name, "data", what, steps, cpu_s, after=after, exclusive=True)

    def synth_task(name, root, n, seed, split, what) -> Task:
        cmd = densevid(
            "synth", str(root), "--videos", str(n), "--seed", str(seed),
            "--split", split, "--preset", g.preset, "--workers", str(g.workers),
        )  # fmt: skip
        marker = root / ".synth_complete"
        return data_task(name, cmd, marker, cost["synth_video"] * n, what)

    def extract_task(name, root, n, wds, after) -> Task:
        cmd = densevid(
            "extract", str(root / "videos"), "-o", str(root / "features"),
            "--features", "pixels,subtitles", "--workers", str(g.workers),
            *PIXELS_OPTIONS,
        )  # fmt: skip
        if wds:
            cmd += ["--webdataset", "--shard-size", str(g.shard_size)]
        what = f"extract pixels (tint, timing) + subtitles, {n} videos"
        marker = root / "features" / ".complete"
        return data_task(
            name, cmd, marker, cost["extract_video"] * n, what, after=(after,)
        )

    n_corpus = max(g.corpus_sizes)
    tasks += [
        synth_task("synth_annotated", ann, g.videos, 0, "0.8,0.1,0.1",
                   f"synth annotated set, {g.videos} videos, seed 0"),
        extract_task("extract_annotated", ann, g.videos, False, "synth_annotated"),
        synth_task("synth_fresh", fresh, g.fresh_videos, g.fresh_seed, "0,0,1",
                   f"synth fresh test set, {g.fresh_videos} videos, "
                   f"seed {g.fresh_seed}"),
        extract_task("extract_fresh", fresh, g.fresh_videos, False, "synth_fresh"),
        synth_task("synth_corpus", pre, n_corpus, g.corpus_seed, "1,0,0",
                   f"synth narrated corpus, {n_corpus} videos, "
                   f"seed {g.corpus_seed}"),
        extract_task("extract_corpus", pre, n_corpus, True, "synth_corpus"),
    ]  # fmt: skip
    for n in g.corpus_sizes:
        link = corpus_dir(shards, n)
        tasks.append(
            Task(
                f"corpus_{n}",
                "data",
                f"link the first {n} videos' shards",
                [Step(link_corpus(shards, n, g.shard_size), link)],
                0.0,
                after=("extract_corpus",),
            )  # fmt: skip
        )

    # the shared tokenizer: one step of pretraining on the main corpus
    tok_run = out / "runs" / "tokenizer"
    tokenizer = tok_run / "tokenizer"
    main_corpus = corpus_dir(shards, g.main_corpus)
    tok_cmd = densevid(
        "pretrain", "--config", PRETRAIN_CONFIG,
        *sets({
            **g.extra, **g.pretrain_extra,
            "corpus": main_corpus, "output_dir": tok_run, "max_steps": 1,
            "eval_every": 0, "save_every": 0, "heldout_fraction": 0.0,
            "num_workers": 0,
        }),
    )  # fmt: skip
    tasks.append(
        Task(
            "tokenizer",
            "pretrain",
            f"BPE on the {g.main_corpus}-video corpus",
            [Step(tok_cmd, tok_run / "last")],
            cost["task"] * 3,
            after=(f"corpus_{g.main_corpus}",),
        )  # fmt: skip
    )

    # pretraining arms
    arms: list[tuple[int, str, int]] = [(g.main_corpus, "both", g.pretrain_seeds[0])]
    arms += [(n, "both", g.pretrain_seeds[0]) for n in g.corpus_sizes]
    arms += [(g.main_corpus, o, g.pretrain_seeds[0]) for o in ("gen", "den")]
    arms += [(g.main_corpus, "both", s) for s in g.pretrain_seeds[1:]]
    arms = list(dict.fromkeys(arms))
    for n, objective, seed in arms:
        name = pretrain_name(n, objective, seed)
        run_dir = out / "runs" / name
        gen_w, den_w = OBJECTIVES[objective]
        cmd = densevid(
            "pretrain", "--config", PRETRAIN_CONFIG,
            *sets({
                "corpus": corpus_dir(shards, n),
                "output_dir": run_dir,
                "tokenizer": tokenizer,
                "max_steps": g.pretrain_steps,
                "eval_every": max(1, g.pretrain_steps // 3),
                "save_every": max(1, g.pretrain_steps // 6),
                "generative_weight": gen_w,
                "denoise_weight": den_w,
                "seed": seed,
                "num_workers": 0,  # one core per job; loading is 7-15x faster
                "num_threads": 1,
                **g.extra,
                **g.pretrain_extra,
            }),
        )  # fmt: skip
        tasks.append(
            Task(
                name,
                "pretrain",
                f"pretrain {n} videos, {objective}, seed {seed}, "
                f"{g.pretrain_steps} steps",
                [
                    Step(cmd, finished_run(run_dir, g.pretrain_steps)),
                    Step(
                        mark_finished(run_dir, g.pretrain_steps),
                        finished_run(run_dir, g.pretrain_steps),
                    ),
                ],
                cost["pretrain_step"] * g.pretrain_steps + cost["task"],
                after=("tokenizer", f"corpus_{n}"),
                meta={"corpus": n, "objective": objective, "seed": seed},
            )  # fmt: skip
        )

    # fine-tuning rows: (init, fraction, speech); init "scratch" or a pretrain arm
    main_arm = pretrain_name(g.main_corpus, "both", g.pretrain_seeds[0])
    rows: list[tuple[str, float, bool]] = []
    for f in g.fractions:
        rows += [("scratch", f, False), (main_arm, f, False)]
    for n in g.corpus_sizes:
        for f in g.corpus_fractions:
            rows += [
                ("scratch", f, False),
                (pretrain_name(n, "both", g.pretrain_seeds[0]), f, False),
            ]
    for o in ("gen", "den"):
        rows += [(pretrain_name(g.main_corpus, o, g.pretrain_seeds[0]),
                  g.objective_fraction, False)]  # fmt: skip
    rows.append((main_arm, g.objective_fraction, False))
    rows.append(("scratch", g.objective_fraction, False))
    for f in g.speech_fractions:
        rows += [("scratch", f, True), (main_arm, f, True),
                 ("scratch", f, False), (main_arm, f, False)]  # fmt: skip
    for s in g.pretrain_seeds[1:]:
        rows.append((pretrain_name(g.main_corpus, "both", s), g.objective_fraction,
                     False))  # fmt: skip
    rows = list(dict.fromkeys(rows))
    meta = {t.name: t.meta for t in tasks if t.kind == "pretrain"}
    n_scored = n_split["test"] + g.fresh_videos
    for seed in g.seeds:
        for init, f, speech in rows:
            name = f"ft_{init.removeprefix('pre_')}_{pct(f)}"
            name += f"{'_speech' if speech else ''}_seed{seed}"
            run_dir = out / "runs" / name
            train_ann = ann / f"train_{pct(f)}.json"
            overrides: dict[str, object] = {
                "train_annotations": train_ann,
                "val_annotations": f"[{ann / 'val.json'}]",
                "features": ann / "features",
                "output_dir": run_dir,
                "max_steps": g.train_steps,
                "eval_every": max(1, g.train_steps // 4),
                "save_every": max(1, g.train_steps // 4),
                "seed": seed,
                "model.speech_features": "subtitles" if speech else "",
                **g.extra,
                **g.train_extra,
            }
            n_videos = max(1, round(n_split["train"] * f))
            batch = int(overrides.get("batch_size", 16))  # configs/synthetic.yaml
            if n_videos < batch:  # a small split still makes whole steps
                overrides["batch_size"] = n_videos
            cmd = densevid("train", "--config", TRAIN_CONFIG)
            if init == "scratch":
                cmd += ["--set", f"tokenizer={tokenizer}"]
                after: tuple[str, ...] = ("tokenizer",)
            else:
                cmd += ["--init", str(out / "runs" / init / "last")]
                after = (init,)
            cmd += sets(overrides)
            steps = [
                Step(lambda f=f: subset(ann / "train.json", f) and None, train_ann),
                Step(cmd, finished_run(run_dir, g.train_steps)),
                Step(mark_finished(run_dir, g.train_steps),
                     finished_run(run_dir, g.train_steps)),
            ]  # fmt: skip
            for which, root in (("test", ann), ("fresh", fresh)):
                preds = run_dir / f"{which}_preds.json"
                steps += [
                    Step(
                        densevid("predict", str(run_dir / "best"), "--features",
                                 str(root / "features"), "--annotations",
                                 str(root / "test.json"), "-o", str(preds)),
                        run_dir / f"{which}_loglik.txt",
                        stdout=run_dir / f"{which}_loglik.txt",
                    ),
                    Step(
                        densevid("eval", "-s", str(preds), "-r",
                                 str(root / "test.json"), "--json",
                                 str(run_dir / f"{which}_scores.json")),
                        run_dir / f"{which}_scores.json",
                    ),
                ]  # fmt: skip
            arm = meta.get(init, {})
            tasks.append(
                Task(
                    name,
                    "train",
                    f"fine-tune {init}, {100 * f:g}% labels"
                    f"{', + speech' if speech else ''}, seed {seed}, "
                    f"{g.train_steps} steps",
                    steps,
                    cost["train_step"] * g.train_steps
                    + 4 * cost["validation"]
                    + cost["score_video"] * n_scored
                    + 5 * cost["task"],
                    after=(*after, "extract_annotated", "extract_fresh"),
                    meta={
                        "init": "scratch" if init == "scratch" else "pretrained",
                        "pretrain": init if init != "scratch" else "",
                        "corpus": arm.get("corpus", 0),
                        "objective": arm.get("objective", ""),
                        "pretrain_seed": arm.get("seed", 0),
                        "fraction": f,
                        "speech": speech,
                        "seed": seed,
                        "n_videos": n_videos,
                        "command": quote(cmd),
                    },
                )  # fmt: skip
            )

    # throughput from the main corpus's shards, alone on the machine
    for batch, threads, workers in THROUGHPUT:
        name = f"tp_b{batch}_t{threads}_w{workers}"
        run_dir = out / "runs" / "throughput" / name
        cmd = densevid(
            "pretrain", "--config", PRETRAIN_CONFIG,
            *sets({
                **g.extra,
                "corpus": main_corpus, "output_dir": run_dir,
                "tokenizer": tokenizer, "max_steps": g.throughput_steps,
                "batch_size": batch, "num_threads": threads,
                "num_workers": workers, "eval_every": 0, "save_every": 0,
                "heldout_fraction": 0.0,
                "log_every": max(1, g.throughput_steps // 2),
            }),
        )  # fmt: skip
        tasks.append(
            Task(
                name,
                "throughput",
                f"throughput: batch {batch}, {threads} threads, {workers} workers, "
                f"{g.throughput_steps} steps",
                [Step(cmd, run_dir / "last")],
                cost["pretrain_step"] * g.throughput_steps * batch / 16 + cost["task"],
                after=(main_arm,),
                exclusive=True,
                meta={"batch": batch, "threads": threads, "workers": workers},
            )  # fmt: skip
        )
    return tasks


# --- results -------------------------------------------------------------------------


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def read_scores(run_dir: Path, which: str) -> dict[str, float] | None:
    scores = run_dir / f"{which}_scores.json"
    if not scores.exists():
        return None
    s = json.loads(scores.read_text())
    out = {k: float(s.get(k, math.nan)) for k in METRICS}
    text = (run_dir / f"{which}_loglik.txt").read_text()
    m = re.search(r"log-likelihood (-?[\d.]+)/token", text)
    out["log_likelihood"] = float(m.group(1)) if m else math.nan
    return out


def stats(values: list[float]) -> dict[str, Any]:
    """Mean and spread (max - min) over seeds, and the values; nan for none."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return {"mean": math.nan, "spread": math.nan, "n": 0, "values": []}
    return {
        "mean": sum(values) / len(values),
        "spread": max(values) - min(values),
        "n": len(values),
        "values": values,
    }


def collect(tasks: list[Task], out: Path) -> dict[str, Any]:
    """Every finished run's scores, and their means and spreads per row."""
    runs = []
    for t in tasks:
        if t.kind != "train":
            continue
        run_dir = out / "runs" / t.name
        scores = {w: read_scores(run_dir, w) for w in SETS}
        if all(v is None for v in scores.values()):
            continue
        runs.append({"name": t.name, **t.meta, **{w: scores[w] for w in SETS}})
    keys = ("init", "pretrain", "corpus", "objective", "pretrain_seed",
            "fraction", "speech")  # fmt: skip
    metrics = (*METRICS, "log_likelihood")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row["seeds"] = sorted(r["seed"] for r in members)
        row["runs"] = [r["name"] for r in members]
        row["command"] = members[0]["command"]
        row["n_videos"] = members[0]["n_videos"]
        for w in SETS:
            row[w] = {
                m: stats([r[w][m] for r in members if r[w] is not None])
                for m in metrics
            }
        if row["init"] == "pretrained":  # gain over scratch, paired by seed
            scratch = {
                r["seed"]: r
                for r in groups.get(
                    ("scratch", "", 0, "", 0, row["fraction"], row["speech"]), []
                )
            }
            for w in SETS:
                row[f"gain_{w}"] = {
                    m: stats([
                        r[w][m] - scratch[r["seed"]][w][m]
                        for r in members
                        if r["seed"] in scratch
                        and r[w] is not None and scratch[r["seed"]][w] is not None
                    ])
                    for m in metrics
                }  # fmt: skip
        rows.append(row)
    pretraining = []
    for t in tasks:
        if t.kind != "pretrain" or t.name == "tokenizer":
            continue
        log = read_log(out / "runs" / t.name)
        held = [r["heldout"] for r in log if "heldout" in r]
        rates = [r["videos_per_s"] for r in log if "videos_per_s" in r]
        pretraining.append(
            {
                "name": t.name,
                **t.meta,
                "gen_log_likelihood": held[-1].get("gen_log_likelihood", math.nan)
                if held
                else math.nan,
                "den_log_likelihood": held[-1].get("den_log_likelihood", math.nan)
                if held
                else math.nan,
                "videos_per_s": sum(rates) / len(rates) if rates else math.nan,
                "command": quote(t.steps[0].cmd) if isinstance(t.steps[0].cmd, list)
                else "",
            }
        )  # fmt: skip
    throughput = []
    for t in tasks:
        if t.kind != "throughput":
            continue
        log = read_log(out / "runs" / "throughput" / t.name)
        rates = [r["videos_per_s"] for r in log if "videos_per_s" in r]
        if rates:
            throughput.append({**t.meta, "videos_per_s": rates[-1]})
    return {
        "runs": runs,
        "rows": rows,
        "pretraining": pretraining,
        "throughput": throughput,
    }


def fmt(s: dict[str, Any], digits: int = 4) -> str:
    if not s or s["n"] == 0:
        return "-"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ({s['spread']:.{digits}f})"


def short(cmd: str, seed_var: bool = False) -> str:
    """A command with the repository's path left out; with ``seed_var`` the
    fine-tuning seed (``seed=``, the run's last ``_seed``) as ``$S``."""
    cmd = cmd.replace(f"{ROOT}/", "")
    if not seed_var:
        return cmd
    cmd = re.sub(r"--set seed=\d+\b", "--set seed=$S", cmd)
    return re.sub(r"_seed\d+(?=[ ']|$)", "_seed$S", cmd)


def markdown(res: dict[str, Any], g: Grid) -> str:
    """The tables: each row's mean (spread = max - min over its seeds)."""
    rows, commands = res["rows"], []

    def ref(row: dict[str, Any]) -> str:
        seeds = " ".join(map(str, row["seeds"]))
        line = f"for S in {seeds}; do {short(row['command'], True)}; done"
        if line not in commands:
            commands.append(line)
        return f"T{commands.index(line) + 1}"

    def find(**want: Any) -> dict[str, Any] | None:
        for r in rows:
            if all(r[k] == v for k, v in want.items()):
                return r
        return None

    def labels(r: dict[str, Any]) -> str:
        return f"{100 * r['fraction']:g}% ({r['n_videos']:,})"

    main_arm = pretrain_name(g.main_corpus, "both", g.pretrain_seeds[0])
    out = [
        "Each cell: mean (spread = max - min) over the fine-tuning seeds "
        f"{', '.join(map(str, g.seeds))}; test = the annotated set's test split, "
        f"fresh = {g.fresh_videos} videos from seed {g.fresh_seed}; beam 4. "
        "Commands (Tn) below.",
        "",
        "### Pretrained against scratch",
        "",
        "| init | labels | test SODA_c | test CIDEr | test METEOR | test F1 | "
        "test log-lik/token | fresh SODA_c | fresh F1 | SODA_c gain (test) | "
        "SODA_c gain (fresh) | command |",
        "|" + "---|" * 12,
    ]
    for f in g.fractions:
        for init in ("scratch", main_arm):
            r = find(pretrain="" if init == "scratch" else init, fraction=f,
                     speech=False)  # fmt: skip
            if r is None:
                continue
            t, fr = r["test"], r["fresh"]
            gains = (
                [fmt(r["gain_test"]["SODA_c"]), fmt(r["gain_fresh"]["SODA_c"])]
                if "gain_test" in r
                else ["", ""]
            )
            out.append(
                f"| {init} | {labels(r)} | {fmt(t['SODA_c'])} | {fmt(t['CIDEr'])} | "
                f"{fmt(t['METEOR'])} | {fmt(t['F1'])} | "
                f"{fmt(t['log_likelihood'], 3)} | {fmt(fr['SODA_c'])} | "
                f"{fmt(fr['F1'])} | {' | '.join(gains)} | {ref(r)} |"
            )
    out += [
        "",
        "### Gain against corpus size",
        "",
        "| corpus videos | labels | pretrained test SODA_c | SODA_c gain (test) | "
        "SODA_c gain (fresh) | F1 gain (test) | log-lik gain (test) | command |",
        "|" + "---|" * 8,
    ]
    for n in g.corpus_sizes:
        for f in g.corpus_fractions:
            r = find(pretrain=pretrain_name(n, "both", g.pretrain_seeds[0]),
                     fraction=f, speech=False)  # fmt: skip
            if r is None or "gain_test" not in r:
                continue
            gt, gf = r["gain_test"], r["gain_fresh"]
            out.append(
                f"| {n:,} | {labels(r)} | {fmt(r['test']['SODA_c'])} | "
                f"{fmt(gt['SODA_c'])} | {fmt(gf['SODA_c'])} | {fmt(gt['F1'])} | "
                f"{fmt(gt['log_likelihood'], 3)} | {ref(r)} |"
            )
    pre = {p["name"]: p for p in res["pretraining"]}
    out += [
        "",
        f"### Which objective ({g.main_corpus:,} videos, "
        f"{100 * g.objective_fraction:g}% labels)",
        "",
        "| objective | test SODA_c | test F1 | test log-lik/token | SODA_c gain "
        "(test) | SODA_c gain (fresh) | held-out gen / den log-lik | command |",
        "|" + "---|" * 8,
    ]
    for o in ("gen", "den", "both"):
        name = pretrain_name(g.main_corpus, o, g.pretrain_seeds[0])
        r = find(pretrain=name, fraction=g.objective_fraction, speech=False)
        if r is None:
            continue
        p = pre.get(name, {})
        out.append(
            f"| {o} | {fmt(r['test']['SODA_c'])} | {fmt(r['test']['F1'])} | "
            f"{fmt(r['test']['log_likelihood'], 3)} | "
            f"{fmt(r['gain_test']['SODA_c'])} | {fmt(r['gain_fresh']['SODA_c'])} | "
            f"{p.get('gen_log_likelihood', math.nan):.3f} / "
            f"{p.get('den_log_likelihood', math.nan):.3f} | {ref(r)} |"
        )
    out += [
        "",
        "### Narration as encoder input at fine-tuning",
        "",
        "| init | labels | input | test SODA_c | test F1 | test log-lik/token | "
        "fresh SODA_c | fresh F1 | command |",
        "|" + "---|" * 9,
    ]
    for f in g.speech_fractions:
        for speech in (False, True):
            for init in ("scratch", main_arm):
                r = find(pretrain="" if init == "scratch" else init, fraction=f,
                         speech=speech)  # fmt: skip
                if r is None:
                    continue
                t, fr = r["test"], r["fresh"]
                out.append(
                    f"| {init} | {labels(r)} | "
                    f"{'frames + narration' if speech else 'frames'} | "
                    f"{fmt(t['SODA_c'])} | {fmt(t['F1'])} | "
                    f"{fmt(t['log_likelihood'], 3)} | {fmt(fr['SODA_c'])} | "
                    f"{fmt(fr['F1'])} | {ref(r)} |"
                )
    out += [
        "",
        "### Pretraining runs",
        "",
        "| run | corpus videos | objective | seed | held-out gen log-lik | "
        "held-out den log-lik | videos/s | test SODA_c at "
        f"{100 * g.objective_fraction:g}% | SODA_c gain (test) | command |",
        "|" + "---|" * 10,
    ]
    for p in res["pretraining"]:
        r = find(pretrain=p["name"], fraction=g.objective_fraction, speech=False)
        tail = (
            f"{fmt(r['test']['SODA_c'])} | {fmt(r['gain_test']['SODA_c'])} | {ref(r)}"
            if r
            else "- | - | -"
        )
        out.append(
            f"| {p['name']} | {p['corpus']:,} | {p['objective']} | {p['seed']} | "
            f"{p['gen_log_likelihood']:.3f} | {p['den_log_likelihood']:.3f} | "
            f"{p['videos_per_s']:.1f} | {tail} |"
        )
    if res["throughput"]:
        out += [
            "",
            f"### Pretraining throughput ({g.main_corpus:,}-video shards, alone)",
            "",
            "| batch | torch threads | loader workers | videos/s |",
            "|---|---|---|---|",
        ]
        for t in res["throughput"]:
            out.append(
                f"| {t['batch']} | {t['threads']} | {t['workers']} | "
                f"{t['videos_per_s']:.1f} |"
            )
    out += ["", "### Commands", ""]
    out += [f"- T{i + 1}: `{c}`" for i, c in enumerate(commands)]
    out += [f"- {p['name']}: `{short(p['command'])}`" for p in res["pretraining"]]
    return "\n".join(out) + "\n"


# --- the command ---------------------------------------------------------------------


def plan(tasks: list[Task], g: Grid, jobs: int) -> tuple[str, float, float]:
    """The list of runs with their CPU-hours, and the totals (CPU h, wall h)."""
    lines, by_kind = [], {}
    cpu = wall = 0.0
    for t in tasks:
        done = t.done()
        lines.append(
            f"{'done' if done else '    '}  {t.kind:10s} {t.cpu_s / 3600:6.2f} h  "
            f"{t.what}"
        )
        if done:
            continue
        by_kind[t.kind] = by_kind.get(t.kind, 0.0) + t.cpu_s
        cpu += t.cpu_s
        if t.kind == "data":
            wall += t.cpu_s / g.workers
        elif t.exclusive:
            wall += t.cpu_s
        else:
            wall += t.cpu_s / jobs
    n = sum(not t.done() for t in tasks)
    parts = ", ".join(f"{k} {v / 3600:.2f}" for k, v in by_kind.items())
    lines.append(
        f"to run: {n} of {len(tasks)} tasks, {cpu / 3600:.1f} CPU-hours ({parts}), "
        f"about {wall / 3600:.1f} h with --jobs {jobs}"
    )
    return "\n".join(lines), cpu / 3600, wall / 3600


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("out", type=Path, help="where data, runs and results go")
    p.add_argument("--jobs", type=int, default=2, help="tasks at once")
    p.add_argument("--plan", action="store_true", help="list the runs and the "
                   "estimated CPU-hours, run nothing")  # fmt: skip
    p.add_argument("--quick", action="store_true",
                   help="the grid's shape in minutes: tiny data and model")  # fmt: skip
    p.add_argument("--seeds", default="0,1", help="fine-tuning seeds")
    p.add_argument("--fractions", default="0.05,0.25,1",
                   help="of the annotated training split")  # fmt: skip
    p.add_argument("--corpus-sizes", default="300,1000,3000",
                   help="narrated videos (multiples of --shard-size)")  # fmt: skip
    p.add_argument("--main-corpus", type=int, default=0,
                   help="the other rows' corpus (default: middle size)")  # fmt: skip
    p.add_argument("--corpus-fractions", default="0.05,0.25")
    p.add_argument("--objective-fraction", type=float, default=0.25)
    p.add_argument("--speech-fractions", default="0.25")
    p.add_argument("--pretrain-seeds", default="0,1",
                   help="the first for every arm, more at the main corpus")  # fmt: skip
    p.add_argument("--videos", type=int, default=2000, help="annotated set")
    p.add_argument("--fresh-videos", type=int, default=200)
    p.add_argument("--corpus-seed", type=int, default=10)
    p.add_argument("--fresh-seed", type=int, default=20)
    p.add_argument("--preset", default="default", help="densevid synth preset")
    p.add_argument("--shard-size", type=int, default=100)
    p.add_argument("--pretrain-steps", type=int, default=1000)
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--throughput-steps", type=int, default=50)
    p.add_argument("--workers", type=int, default=0,
                   help="synth/extract processes (default: --jobs)")  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override for every pretrain and train run (model.* shape pretraining)",
    )  # fmt: skip
    p.add_argument("--in-process", action="store_true",
                   help="run the densevid commands in this process, one at a "
                   "time (the tests: no start-up per command)")  # fmt: skip
    p.add_argument("--launcher", default="",
                   help="a command put before every densevid command, e.g. "
                   "'nice -n 10' or a site's job wrapper")  # fmt: skip
    return p.parse_args(argv)


def grid_of(args: argparse.Namespace) -> Grid:
    extra: dict[str, object] = dict(o.split("=", 1) for o in args.overrides)
    train_extra: dict[str, object] = {}
    pretrain_extra: dict[str, object] = {}
    if args.quick:
        args.videos, args.fresh_videos, args.preset = 24, 4, "small"
        args.corpus_sizes, args.shard_size, args.main_corpus = "10,20", 5, 0
        args.fractions, args.corpus_fractions = "0.5,1", "0.5"
        args.objective_fraction, args.speech_fractions = 0.5, "1"
        args.pretrain_steps = args.train_steps = 24
        args.throughput_steps = 4
        extra = {
            **QUICK_MODEL,
            "batch_size": 8,
            "vocab_size": 300,
            "warmup_steps": 4,
            "log_every": 4,
            "num_threads": 1,  # tiny matrices: more threads only contend
            **extra,
        }
        train_extra = {"val_max_videos": 4}
        pretrain_extra = {"heldout_fraction": 0.2}  # a few of 20 videos
    sizes = sorted(ints(args.corpus_sizes))
    if any(n % args.shard_size for n in sizes):
        raise SystemExit(
            f"--corpus-sizes must be multiples of --shard-size {args.shard_size}"
        )
    main_corpus = args.main_corpus or sizes[len(sizes) // 2]
    if main_corpus not in sizes:
        raise SystemExit(f"--main-corpus {main_corpus} is not in --corpus-sizes")
    return Grid(
        videos=args.videos,
        fresh_videos=args.fresh_videos,
        corpus_sizes=sizes,
        main_corpus=main_corpus,
        shard_size=args.shard_size,
        seeds=ints(args.seeds),
        fractions=floats(args.fractions),
        corpus_fractions=floats(args.corpus_fractions),
        objective_fraction=args.objective_fraction,
        speech_fractions=floats(args.speech_fractions),
        pretrain_seeds=ints(args.pretrain_seeds),
        pretrain_steps=args.pretrain_steps,
        train_steps=args.train_steps,
        throughput_steps=args.throughput_steps,
        preset=args.preset,
        corpus_seed=args.corpus_seed,
        fresh_seed=args.fresh_seed,
        workers=args.workers or args.jobs,
        extra=extra,
        train_extra=train_extra,
        pretrain_extra=pretrain_extra,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    g = grid_of(args)
    out = args.out.resolve()
    tasks = build(g, out)
    if args.quick:  # two points of the sweep are its shape
        tasks = [t for t in tasks if t.kind != "throughput"] + [
            t for t in tasks if t.kind == "throughput"
        ][:2]
    text, _, _ = plan(tasks, g, args.jobs)
    if args.plan:
        print(text)
        return 0
    print(text.splitlines()[-1], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    if args.in_process and args.jobs != 1:
        raise SystemExit("--in-process runs one command at a time: --jobs 1")
    runner = Runner(
        out / "commands.log", args.jobs, shlex.split(args.launcher), args.in_process
    )
    failures = runner.run(tasks)
    res = collect(tasks, out)
    res["grid"] = {k: v for k, v in vars(g).items()}
    table = markdown(res, g)
    (out / "results.md").write_text(table, encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(res, indent=1, default=str), encoding="utf-8"
    )
    print(table)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
