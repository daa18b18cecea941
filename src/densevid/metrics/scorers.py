"""The caption scorers of coco-caption, computed per video the way densevid_eval does.

The official evaluation calls each pycocoevalcap scorer once per video on that video's
(prediction, reference) pairs. Here the expensive parts are done once per distinct
pair and summed per video:

- METEOR 1.5: the jar pycocoevalcap ships, kept running as long-lived ``-stdio``
  processes. Each distinct pair is scored once (``SCORE`` -> a statistics line); a
  video's corpus METEOR is the jar's own ``EVAL`` over that video's statistics, which
  is exactly what pycocoevalcap's ``Meteor.compute_score`` does.
- BLEU-1..4 ("closest" reference length), ROUGE-L and CIDEr-D are re-implemented from
  coco-caption's formulas (BLEU and ROUGE-L from per-pair statistics; CIDEr-D with
  document frequencies from the video's own references, a quirk every densevid_eval
  descendant shares) and checked against pycocoevalcap in the tests.

All texts given here are already PTB-tokenised (see ``tokenize.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from densevid.errors import DensevidError
from densevid.metrics.backend import check_backend
from densevid.metrics.meteor_pool import POOL_CLASS, pool_classpath
from densevid.metrics.tokenize import JVM_TEXT, coco_jar, java_executable

logger = logging.getLogger(__name__)

# METEOR as pycocoevalcap starts it; the serial GC halves the resident memory
# (~0.6 GiB per process).
METEOR_ARGS = ["-", "-", "-stdio", "-l", "en", "-norm"]
METEOR_JVM = ["-Xmx2G", "-XX:+UseSerialGC", *JVM_TEXT]
METEOR_CHUNK_LINES = 2000  # lines per pipelined request to one process
METEOR_EVAL_STATS = 500  # statistics per EVAL line for sentence-level scores
MAX_CACHED_PAIRS = 500_000  # METEOR statistics kept between calls (~0.2 GiB)
MAX_WORKERS = 4
BLEU_N = 4
CIDER_N = 4
CIDER_SIGMA = 6.0
ROUGE_BETA = 1.2
BLEU_TINY = 1e-15  # coco-caption's constants: 0 matches give ~0, never 0/0
BLEU_SMALL = 1e-9


def default_workers() -> int:
    """One METEOR process per core, at most ``MAX_WORKERS`` (~0.6 GiB each)."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


class _MeteorProcess:
    """One ``meteor-1.5.jar -stdio`` process answering pipelined request lines."""

    def __init__(self, cmd: list[str], cwd: str) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self.proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
            )
        except OSError as e:
            raise DensevidError(f"cannot start METEOR ({e})") from e
        self.lock = threading.Lock()

    def request(self, lines: Sequence[str], n_answers: int) -> list[str]:
        """Sends ``lines`` and returns the ``n_answers`` lines they produce."""
        with self.lock:
            error: list[BaseException] = []

            def write() -> None:
                try:
                    # UTF-8 as pycocoevalcap writes: the PTB tokenizer emits U+00A0
                    # inside fractions ("7 1/2" -> "7\xa01/2").
                    data = "".join(line + "\n" for line in lines).encode("utf-8")
                    self.proc.stdin.write(data)
                    self.proc.stdin.flush()
                except BaseException as e:  # e.g. broken pipe; reported below
                    error.append(e)
                    self.proc.kill()  # so that the reader sees the end at once

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            readline = self.proc.stdout.readline
            answers = []
            for _ in range(n_answers):
                line = readline()
                if not line:
                    break
                answers.append(line.decode("utf-8", errors="replace").strip())
            writer.join()
            if error and not isinstance(error[0], OSError):
                raise error[0]
            if len(answers) < n_answers or error:
                raise DensevidError(f"METEOR (java) stopped: {self._stderr_tail()}")
            return answers

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-3:]) or "no message"

    def peak_rss_bytes(self) -> int:
        """Peak resident memory of the JVM (Linux), 0 when unknown."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def cpu_seconds(self) -> float:
        """CPU time the JVM has used so far (Linux), 0 when unknown."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


class Meteor:
    """METEOR 1.5 (pycocoevalcap's jar and settings) in long-lived processes.

    Starting one costs ~7 s (it loads the paraphrase table), so keep one instance
    for many evaluations: statistics of pairs already scored are cached. With
    several workers and a ``javac`` at hand they are threads of one JVM
    (``meteor_pool.py``), else one jar process each. Use as a context manager or
    call ``close()``.

    Args:
        n_workers: processes to run side by side (default: one per core, at
            most 4).
        java: the java binary (default: ``java_executable()``).
    """

    def __init__(self, n_workers: int | None = None, java: str | None = None):
        self.n_workers = n_workers or default_workers()
        java = java or java_executable()
        jar = coco_jar("meteor", "meteor-1.5.jar")
        cwd = str(jar.parent)
        pool = pool_classpath(java, jar) if self.n_workers > 1 else None
        if pool:  # one JVM, one paraphrase table, n_workers scoring threads
            classpath = f"{jar}{os.pathsep}{pool}"
            cmd = [java, *METEOR_JVM, "-cp", classpath, POOL_CLASS]
            cmd += [str(self.n_workers), *METEOR_ARGS]
            self._procs = [_MeteorProcess(cmd, cwd)]
        else:  # exactly pycocoevalcap's process, once per worker
            cmd = [java, *METEOR_JVM, "-jar", str(jar), *METEOR_ARGS]
            self._procs = [_MeteorProcess(cmd, cwd) for _ in range(self.n_workers)]
        self._stats: dict[tuple[str, str], str] = {}

    def __enter__(self) -> Meteor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return not self._procs

    def close(self) -> None:
        for p in self._procs:
            p.close()
        self._procs = []

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def peak_rss_bytes(self) -> int:
        """Summed peak resident memory of the METEOR processes."""
        return sum(p.peak_rss_bytes() for p in self._procs)

    def cpu_seconds(self) -> float:
        """CPU time the METEOR processes have used so far."""
        return sum(p.cpu_seconds() for p in self._procs)

    def stats(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """METEOR statistics lines of (hypothesis, reference) pairs, each distinct
        pair scored once."""
        todo = list(dict.fromkeys(p for p in pairs if p not in self._stats))
        if todo:
            if len(self._stats) + len(todo) > MAX_CACHED_PAIRS:
                self._stats.clear()  # and score again what it held of these
                todo = list(dict.fromkeys(pairs))
            lines = [_score_line(h, r) for h, r in todo]
            answers = self._map(lines, [1] * len(lines))
            self._stats.update(zip(todo, answers, strict=True))
        return [self._stats[p] for p in pairs]

    def corpus_scores(self, groups: Sequence[Sequence[str]]) -> list[float]:
        """For each group of statistics lines, the corpus METEOR (``EVAL``), which
        is what ``Meteor.compute_score`` returns for a video's pairs."""
        lines = ["EVAL ||| " + " ||| ".join(g) for g in groups]
        answers = self._map(lines, [len(g) + 1 for g in groups], last_only=True)
        return [_float(a) for a in answers]

    def sentence_scores(self, stats: Sequence[str]) -> list[float]:
        """The per-pair METEOR of statistics lines (``compute_score``'s list)."""
        groups = [
            stats[i : i + METEOR_EVAL_STATS]
            for i in range(0, len(stats), METEOR_EVAL_STATS)
        ]
        lines = ["EVAL ||| " + " ||| ".join(g) for g in groups]
        answers = self._map(lines, [len(g) + 1 for g in groups], drop_last=True)
        return [_float(a) for a in answers]

    def _map(
        self,
        lines: list[str],
        n_answers: list[int],
        *,
        last_only: bool = False,
        drop_last: bool = False,
    ) -> list[str]:
        """Sends lines in chunks to free processes; answers come back in order.
        With ``last_only`` each line yields its last answer, with ``drop_last``
        all but its last."""
        if not self._procs:
            raise DensevidError("this Meteor scorer was closed")
        chunks: queue.Queue = queue.Queue()
        starts = list(range(0, len(lines), METEOR_CHUNK_LINES))
        for i in starts:
            chunks.put(i)
        results: dict[int, list[str]] = {}
        errors: list[BaseException] = []

        def work(proc: _MeteorProcess) -> None:
            while not errors:
                try:
                    i = chunks.get_nowait()
                except queue.Empty:
                    return
                part = lines[i : i + METEOR_CHUNK_LINES]
                counts = n_answers[i : i + METEOR_CHUNK_LINES]
                try:
                    got = proc.request(part, sum(counts))
                except BaseException as e:
                    errors.append(e)
                    return
                out, k = [], 0
                for c in counts:
                    if last_only:
                        out.append(got[k + c - 1])
                    elif drop_last:
                        out.extend(got[k : k + c - 1])
                    else:
                        out.extend(got[k : k + c])
                    k += c
                results[i] = out

        threads = [
            threading.Thread(target=work, args=(p,), daemon=True)
            for p in self._procs[: max(1, min(len(self._procs), len(starts)))]
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.close()  # a process died: later calls must not reuse this one
            raise errors[0]
        return [a for i in starts for a in results[i]]


_shared: dict[str, Meteor] = {}
_shared_lock = threading.Lock()


def make_meteor(backend: str | None = None, n_workers: int | None = None):
    """A METEOR 1.5 scorer: "python" (``densevid.metrics.meteor``, no Java) or
    "java" (the jar pycocoevalcap ships, for cross-checking). Both answer the same
    statistics lines and scores."""
    if check_backend(backend) == "java":
        return Meteor(n_workers)
    from densevid.metrics.meteor import PythonMeteor

    return PythonMeteor(n_workers=n_workers)


def shared_meteor(n_workers: int | None = None, backend: str | None = None):
    """The process-wide METEOR of a backend that ``evaluate`` uses by default,
    started on first use and kept (with its cache) until ``close_shared_meteor()``
    or exit, so that repeated evaluations (training) pay the start-up once."""
    with _shared_lock:
        backend = check_backend(backend)
        meteor = _shared.get(backend)
        if meteor is None or meteor.closed:
            meteor = _shared[backend] = make_meteor(backend, n_workers)
            atexit.register(meteor.close)
        return meteor


def close_shared_meteor() -> None:
    """Stops the shared METEOR scorers (they restart when needed)."""
    with _shared_lock:
        for meteor in _shared.values():
            meteor.close()
        _shared.clear()


def _score_line(hyp: str, ref: str) -> str:
    # pycocoevalcap's _stat: "|||" removed from the hypothesis, double spaces
    # collapsed once; references go as they are (tokenised text holds no "|||").
    hyp = hyp.replace("|||", "").replace("  ", " ")
    return f"SCORE ||| {ref.replace('|||', '')} ||| {hyp}"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError as e:
        raise DensevidError(f"METEOR (java) answered {text!r}, not a score") from e


# --- n-gram metrics ------------------------------------------------------------------


class Sentence:
    """What BLEU, ROUGE-L and CIDEr-D need of one token string, computed once.

    ``grams`` holds the 1..4-gram counts in coco-caption's ``precook`` order (the
    order CIDEr-D sums its norms in); ``by_order[n]`` the (gram, count) pairs of
    the (n+1)-grams.
    """

    __slots__ = ("by_order", "grams", "n_bigrams", "n_words", "tokens")

    def __init__(self, text: str) -> None:
        words = text.split()
        grams: dict[tuple[str, ...], int] = {}
        self.by_order: list[list[tuple[tuple[str, ...], int]]] = []
        for k in range(1, BLEU_N + 1):
            order: dict[tuple[str, ...], int] = {}
            shifted = [words[i:] for i in range(k)]
            for gram in zip(*shifted, strict=False):  # precook's order
                order[gram] = order.get(gram, 0) + 1
            grams.update(order)
            self.by_order.append(list(order.items()))
        self.grams = grams
        self.n_words = len(words)
        # coco-caption's CIDEr-D "length" is the number of bigrams (its n == 1).
        self.n_bigrams = max(0, len(words) - 1)
        self.tokens = text.split(" ")  # ROUGE-L splits on single spaces


class NgramCache(dict):
    """token string -> ``Sentence``, built on first use."""

    def __missing__(self, text: str) -> Sentence:
        s = self[text] = Sentence(text)
        return s


def bleu_pair_stats(
    hyp: str, ref: str, cache: NgramCache
) -> tuple[int, int, int, int, int, int]:
    """(test length, reference length, correct 1..4-grams) of one pair: BLEU's
    sufficient statistics; the guesses follow from the test length."""
    h, r = cache[hyp], cache[ref]
    ref_grams = r.grams
    correct = [0] * BLEU_N
    for n, grams in enumerate(h.by_order):
        c = 0
        for gram, count in grams:
            rc = ref_grams.get(gram)
            if rc:
                c += rc if rc < count else count
        correct[n] = c
    return (h.n_words, r.n_words, *correct)


def bleu_corpus(stats: Sequence[Sequence[int]]) -> list[float]:
    """BLEU-1..4 of a corpus of pairs (``bleu_pair_stats`` rows), as coco-caption's
    ``BleuScorer.compute_score(option="closest")`` with one reference per pair."""
    testlen = reflen = 0
    guess = [0] * BLEU_N
    correct = [0] * BLEU_N
    for s in stats:
        testlen += s[0]
        reflen += s[1]
        for k in range(BLEU_N):
            guess[k] += max(0, s[0] - k)
            correct[k] += s[2 + k]
    bleus = []
    bleu = 1.0
    for k in range(BLEU_N):
        bleu *= float(correct[k] + BLEU_TINY) / (guess[k] + BLEU_SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + BLEU_TINY) / (reflen + BLEU_SMALL)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus


def rouge_l(hyp: str, ref: str, cache: NgramCache | None = None) -> float:
    """ROUGE-L F (beta 1.2) of one pair, coco-caption's ``Rouge.calc_score``
    (tokens split on single spaces, as there)."""
    if cache is None:
        c, r = hyp.split(" "), ref.split(" ")
    else:
        c, r = cache[hyp].tokens, cache[ref].tokens
    lcs = lcs_length(r, c)
    return rouge_f(lcs / float(len(c)), lcs / float(len(r)))


def rouge_f(prec: float, rec: float) -> float:
    """coco-caption's ROUGE-L F-measure (beta 1.2) of an LCS precision and recall."""
    if prec != 0 and rec != 0:
        return ((1 + ROUGE_BETA**2) * prec * rec) / float(rec + ROUGE_BETA**2 * prec)
    return 0.0


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison & Dix 1986;
    Hyyro 2004): one big-integer update per token of ``b``."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        m = masks.get(token)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def cider_d(pairs: Sequence[tuple[str, str]], cache: NgramCache) -> float:
    """CIDEr-D of a corpus of (hypothesis, reference) pairs, as coco-caption's
    ``CiderScorer`` computes it: document frequencies and ``log(#pairs)`` come
    from these pairs' references only, so one pair alone scores 0."""
    log_n = float(np.log(float(len(pairs))))
    df: dict[tuple[str, ...], int] = {}
    for _, ref in pairs:
        for gram in cache[ref].grams:
            df[gram] = df.get(gram, 0) + 1
    logs = log_table(len(pairs))
    vectors: dict[str, tuple] = {}

    def vector(text: str) -> tuple:
        v = vectors.get(text)
        if v is None:
            v = vectors[text] = cider_vector(cache[text], df, log_n, logs)
        return v

    scores = [cider_pair(vector(hyp), vector(ref)) for hyp, ref in pairs]
    return float(np.mean(np.array(scores)))


def cider_vector(
    s: Sentence, df: Mapping[tuple[str, ...], int], log_n: float, logs: Sequence[float]
) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
    """A sentence's CIDEr-D tf-idf weights per n-gram order, their norms and its
    length (bigram count, as coco-caption measures it); ``logs[df]`` is
    ``log(max(1, df))``."""
    weights = []
    norms = []
    for grams in s.by_order:
        w_n = {}
        sq = 0.0
        for gram, tf in grams:
            w = float(tf) * (log_n - logs[df.get(gram, 0)])
            w_n[gram] = w
            sq += pow(w, 2)
        weights.append(w_n)
        norms.append(math.sqrt(sq))
    return weights, norms, s.n_bigrams


def cider_pair(hyp: tuple, ref: tuple) -> float:
    """CIDEr-D of one hypothesis against one reference (``cider_vector``s):
    clipped cosine per order, Gaussian length penalty, mean over orders, x10."""
    wh, nh, lh = hyp
    wr, nr, lr = ref
    penalty = np.e ** (-(float(lh - lr) ** 2) / (2 * CIDER_SIGMA**2))
    val = np.zeros(CIDER_N)
    for n in range(CIDER_N):
        s = 0.0
        ref_n = wr[n]
        for gram, w in wh[n].items():
            x = ref_n.get(gram)
            if x is not None:
                s += min(w, x) * x
        if nh[n] != 0 and nr[n] != 0:
            s /= nh[n] * nr[n]
        val[n] = s * penalty
    return float(np.mean(val)) * 10.0


_LOGS: list[float] = []


def log_table(n: int) -> list[float]:
    """``log(max(1, df))`` for df = 0..n (document frequencies are counts)."""
    while len(_LOGS) <= n:
        _LOGS.append(math.log(max(1.0, float(len(_LOGS)))))
    return _LOGS
