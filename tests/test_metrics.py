"""Unit tests of densevid.metrics against independent references.

BLEU, ROUGE-L and CIDEr-D are checked against pycocoevalcap's own scorers, the
alignment of SODA against brute force, tIoU against the formula written out, and the
tokenizer against known outputs of Stanford's PTBTokenizer. Numbers of the official
scripts on real and constructed files are in test_metrics_official.py.
"""

from __future__ import annotations

import itertools
import json
import random
import stat

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider_scorer import CiderScorer
from pycocoevalcap.rouge.rouge import Rouge, my_lcs

from densevid.cli import main
from densevid.errors import DensevidError
from densevid.events import Event, SubmissionWarning, VideoEvents
from densevid.metrics import (
    Meteor,
    PTBTokenizer,
    evaluate,
    f1_scores,
    format_scores,
    java_executable,
    shared_meteor,
    shared_tokenizer,
)
from densevid.metrics import densevid as dv
from densevid.metrics import soda as sd
from densevid.metrics.scorers import (
    NgramCache,
    bleu_corpus,
    bleu_pair_stats,
    cider_d,
    lcs_length,
    rouge_l,
)

WORDS = ["a", "man", "woman", "is", "the", "dog", "runs", "walks", "ball", "red"]


@pytest.fixture(scope="session")
def meteor() -> Meteor:
    """One METEOR for the session (its start costs ~7 s); evaluate() uses it too."""
    return shared_meteor()


def _sentence(rng: random.Random, max_words: int = 9) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, max_words)))


def _video(vid: str, events: list[tuple[float, float, str]]) -> VideoEvents:
    return VideoEvents(vid, tuple(Event(s, e, t) for s, e, t in events))


# --- tIoU, pairs, proposals ----------------------------------------------------------


def _official_iou(pred: list[float], ref: list[float]) -> float:
    # densevid_eval's formula, written out for scalars.
    start_i, end_i = pred
    start, end = ref
    intersection = max(0, min(end, end_i) - max(start, start_i))
    union = min(max(end, end_i) - min(start, start_i), end - start + end_i - start_i)
    return float(intersection) / (union + 1e-8)


def test_tiou_matrix_is_the_official_formula_bit_for_bit():
    rng = np.random.default_rng(0)
    pred = np.sort(rng.uniform(0, 100, (40, 2)).round(2), axis=1)
    ref = np.sort(rng.uniform(0, 100, (30, 2)).round(2), axis=1)
    got = dv.tiou_matrix(pred, ref)
    for i, j in itertools.product(range(40), range(30)):
        assert got[i, j] == _official_iou(list(pred[i]), list(ref[j]))
    # disjoint segments: union is the sum of lengths, tIoU 0; identical: ~1
    assert dv.tiou_matrix(np.array([[0.0, 1.0]]), np.array([[2.0, 4.0]]))[0, 0] == 0
    assert dv.tiou_matrix(np.array([[0.0, 10.0]]), np.array([[0.0, 10.0]]))[0, 0] < 1


def test_caption_pairs_match_every_overlapping_reference_else_garbage():
    pred = dv.Prediction(np.array([[0.0, 10.0], [50.0, 51.0]]), ("p0", "p1"))
    refs = [
        dv.Reference(np.array([[0.0, 10.0], [0.0, 9.0]]), ("r0", "r1")),
        dv.Reference(np.array([[1.0, 10.0]]), ("s0",)),
    ]
    pairs_05, pairs_095 = dv.caption_pairs(pred, refs, (0.5, 0.95), "GARBAGE")
    assert pairs_05 == [("p0", "r0"), ("p0", "r1"), ("p0", "s0"), ("p1", "GARBAGE")]
    assert pairs_095 == [("p0", "r0"), ("p1", "GARBAGE")]


def test_proposal_scores_strict_threshold_best_file_independently():
    pred = dv.Prediction(np.array([[0.0, 10.0], [20.0, 30.0]]), ("a", "b"))
    # file 1: one of two references covered by pred 0; file 2: both preds useful
    refs = [
        dv.Reference(np.array([[0.0, 10.0], [40.0, 50.0]]), ("x", "y")),
        dv.Reference(np.array([[0.0, 10.0], [20.0, 30.0], [60, 70], [80, 90]]), "wxyz"),
    ]
    precision, recall = dv.proposal_scores(pred, refs, (0.5,))
    assert precision == [1.0]  # file 2: both predictions hit
    assert recall == [0.5]  # file 1: 1 of 2, file 2: 2 of 4
    # strict >: a tIoU of exactly 0.5 (up to the 1e-8) does not count at 0.5
    half = dv.Prediction(np.array([[0.0, 5.0]]), ("a",))
    ten = dv.Reference(np.array([[0.0, 10.0]]), ("x",))
    p, r = dv.proposal_scores(half, [ten], (0.49, 0.5))
    assert p == [1.0, 0.0] and r == [1.0, 0.0]


def test_f1_definitions():
    precision = np.array([[1.0, 0.5], [0.0, 0.0]])
    recall = np.array([[0.5, 0.5], [0.0, 0.0]])
    per_tiou, value = f1_scores(precision, recall, "tiou")
    p, r = [0.5, 0.25], [0.25, 0.25]
    expected = [2 * a * b / (a + b) for a, b in zip(p, r, strict=True)]
    assert per_tiou == pytest.approx(expected) and value == pytest.approx(
        np.mean(expected)
    )
    assert f1_scores(precision, recall, "average")[1] == pytest.approx(
        2 * 0.375 * 0.25 / 0.625
    )
    video0 = 2 * 0.75 * 0.5 / 1.25
    assert f1_scores(precision, recall, "video")[1] == pytest.approx(video0 / 2)


# --- BLEU, ROUGE-L, CIDEr-D against pycocoevalcap -------------------------------------


def test_lcs_bit_parallel_equals_dynamic_programming():
    rng = random.Random(1)
    for _ in range(2000):
        a, b = _sentence(rng, 14).split(" "), _sentence(rng, 14).split(" ")
        assert lcs_length(a, b) == my_lcs(a, b)


def test_ngram_metrics_equal_pycocoevalcap():
    rng = random.Random(2)
    cache = NgramCache()
    rouge = Rouge()
    for _ in range(300):
        pairs = [(_sentence(rng), _sentence(rng)) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.3:
            pairs.append(pairs[0])  # the same pair twice counts twice
        bleu = BleuScorer(n=4)
        for h, r in pairs:
            bleu += (h, [r])
        expected, _ = bleu.compute_score(option="closest", verbose=0)
        got = bleu_corpus([bleu_pair_stats(h, r, cache) for h, r in pairs])
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)
        for h, r in pairs:
            assert rouge_l(h, r, cache) == rouge.calc_score([h], [r])
        if any(r.split() for _, r in pairs):  # pycocoevalcap fails on no n-gram
            cider = CiderScorer(n=4, sigma=6.0)
            for h, r in pairs:
                cider += (h, [r])
            expected_cider, _ = cider.compute_score()
            assert cider_d(pairs, cache) == pytest.approx(expected_cider, abs=1e-12)


def test_cider_of_a_single_pair_is_zero():
    # log(#references) = 0 weights every n-gram 0: a quirk of per-video CIDEr-D.
    assert cider_d([("a man walks", "a man walks")], NgramCache()) == 0.0


# --- SODA ----------------------------------------------------------------------------


def _brute_force_alignment(s: np.ndarray) -> float:
    n_rows, n_cols = s.shape
    best = 0.0
    for k in range(min(n_rows, n_cols) + 1):
        for rows in itertools.combinations(range(n_rows), k):
            for cols in itertools.combinations(range(n_cols), k):
                best = max(best, sum(s[i, j] for i, j in zip(rows, cols, strict=True)))
    return best


def test_soda_alignment_is_the_best_monotone_matching():
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (1, 4), (4, 1), (3, 3), (4, 5), (5, 3)]:
        s = rng.uniform(0, 1, shape) * (rng.uniform(0, 1, shape) > 0.3)
        assert sd.aligned_score(s) == pytest.approx(_brute_force_alignment(s))
    # long videos need no recursion (fujiso's recursion fails past ~1000 steps)
    assert sd.aligned_score(np.eye(3000)) == 3000.0


def test_soda_video_prf_uses_reference_as_hypothesis():
    video = sd.SodaVideo(
        np.array([[0.0, 10.0], [10.0, 20.0]]),
        ("p0", "p1"),
        np.array([[0.0, 10.0]]),
        ("r0",),
    )
    assert sd.scored_pairs(video) == [("r0", "p0")]  # (hypothesis, reference)
    p, r, f = sd.video_prf(video, lambda hyp, ref: 0.5)
    tiou = dv.tiou_matrix(np.array([[0.0, 10.0]]), np.array([[0.0, 10.0]]))[0, 0]
    assert (p, r) == pytest.approx((0.5 * tiou / 2, 0.5 * tiou))
    assert f == pytest.approx(2 * p * r / (p + r))


# --- tokenizer and Java --------------------------------------------------------------


def test_ptb_tokenizer_matches_coco_caption():
    tok = PTBTokenizer()
    out = tok(
        [
            "A man walks.",
            'He said "hi" (loudly)!',
            "...",
            "",
            "I cannot go, gonna win",
            "caf\u00e9 na\u00efve",
            "line one\nline two\rthree\x0bfour\x0cfive",
            "The 7 1/2 meter board.",
            "abc123!@#",
        ]
    )
    assert list(out.values()) == [
        "a man walks",
        "he said hi -lrb- loudly -rrb-",  # -LRB- escapes the lower-cased list
        "",
        "",
        "i can not go gon na win",
        "caf na ve",  # non-ASCII -> spaces, as the official remove_nonascii
        "line one line two three four five",
        "the 7\u00a01/2 meter board",  # the tokenizer's own non-breaking space
        "abc123!@#",
    ]
    assert tok(["A man walks."]) == {"A man walks.": "a man walks"}  # cached


def test_missing_java_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DENSEVID_JAVA", str(tmp_path / "no-java"))
    with pytest.raises(DensevidError, match="Java not found"):
        java_executable()
    monkeypatch.delenv("DENSEVID_JAVA")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DensevidError, match="install a Java runtime"):
        PTBTokenizer()


def test_meteor_process_failure_is_one_clear_error(tmp_path):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'Error: Unable to access jarfile' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    m = Meteor(1, java=str(fake))
    with pytest.raises(DensevidError, match="METEOR \\(java\\) stopped.*jarfile"):
        m.stats([("a man", "a man")])
    assert m.closed


def test_meteor_corpus_and_sentence_scores(meteor):
    stats = meteor.stats([("a man walks", "a man walks"), ("", "a man walks")])
    assert meteor.sentence_scores(stats) == [1.0, 0.0]
    # the corpus score pools the statistics: between the two sentence scores
    (corpus,) = meteor.corpus_scores([stats])
    assert 0.0 < corpus < 1.0
    assert meteor.corpus_scores([list(reversed(stats))]) == [corpus]


# --- evaluate ------------------------------------------------------------------------


REFS = {
    "v_1": _video(
        "v_1", [(0, 10, "A man walks a dog."), (10, 20, "He throws a ball.")]
    ),
    "v_2": _video("v_2", [(0, 30, "A woman runs on a beach.")]),
}


def test_evaluate_perfect_predictions(meteor):
    scores = evaluate(REFS, [REFS], meteor=meteor)
    assert scores["Recall"] == scores["Precision"] == scores["F1"] == 1.0
    assert scores["METEOR"] == pytest.approx(1.0)
    assert scores["Bleu_1"] == pytest.approx(1.0)
    assert scores["ROUGE_L"] == pytest.approx(1.0)
    assert scores["SODA_c"] == pytest.approx(1.0, abs=1e-6)  # tIoU 1 - 1e-9
    # v_2's single pair scores 0 (log #refs = 0), v_1's two pairs do not
    assert 0 < scores["CIDEr@0.5"] == scores["CIDEr"]
    assert set(scores) >= {f"METEOR@{t}" for t in ("0.3", "0.5", "0.7", "0.9")}


def test_evaluate_missing_videos_and_options(meteor):
    preds = {"1": REFS["v_1"]}  # id without the "v_" prefix still matches
    with pytest.warns(SubmissionWarning, match="1 predicted video id matching"):
        official = evaluate(preds, REFS, meteor=meteor)
    preds = {"v_1": REFS["v_1"]}
    skipped = evaluate(preds, REFS, meteor=meteor, skip_missing=True)
    assert official["METEOR"] == pytest.approx(skipped["METEOR"] / 2)
    assert official["Recall"] == 0.5 and skipped["Recall"] == 1.0
    # SODA skips videos without predictions unless told to count them
    assert official["SODA_c"] == pytest.approx(skipped["SODA_c"])
    zero = evaluate(preds, REFS, metrics=["SODA_c"], skip_missing=False)
    assert zero == {"SODA_c": pytest.approx(official["SODA_c"] / 2)}
    only = evaluate(preds, REFS, metrics=["Bleu_4", "Recall"], meteor=meteor)
    assert {k for k in only if "@" not in k} == {
        "Bleu_1",
        "Bleu_2",
        "Bleu_3",
        "Bleu_4",
        "Recall",
    }
    assert only["Bleu_4"] == official["Bleu_4"]


def test_evaluate_truncates_in_file_order(meteor):
    good = REFS["v_1"].events
    bad = (Event(50, 60, "nothing"),)
    preds = {"v_1": VideoEvents("v_1", bad + good)}
    assert (
        evaluate(preds, REFS, metrics=["Precision"], max_proposals=1)["Precision"]
        == 0.0
    )
    assert evaluate(preds, REFS, metrics=["Precision"], max_proposals=2)[
        "Precision@0.5"
    ] == pytest.approx(0.5 / 2)  # 1 of 2 on v_1, 0 on v_2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metrics": ["BLEU"]}, "unknown metric"),
        ({"garbage": "2019"}, "garbage must be"),
        ({"soda_references": "all"}, "soda_references"),
        ({"f1": "macro"}, "f1 must be"),
        ({"tious": [1.5]}, "tIoU"),
    ],
)
def test_evaluate_bad_options(kwargs, message):
    with pytest.raises(DensevidError, match=message):
        evaluate(REFS, REFS, **kwargs)


def test_evaluate_no_common_video_scores_zero_with_a_warning(meteor):
    """The official scorer gives 0 when no predicted video is a reference video
    (the numbers are pinned in test_submissions.py); densevid says why."""
    preds = {"other": REFS["v_1"]}
    with pytest.warns(SubmissionWarning, match="none of the 1 predicted video in"):
        scores = evaluate(preds, REFS, metrics=["Recall", "METEOR"], meteor=meteor)
    assert scores["Recall"] == scores["METEOR"] == 0.0
    with pytest.raises(DensevidError, match="refused by --strict: none of the 1"):
        evaluate(preds, REFS, strict=True)
    with pytest.raises(DensevidError, match="the references hold no video"):
        evaluate(preds, {})


def test_evaluate_unknown_and_past_end_named_by_source(meteor):
    late = VideoEvents("v_2", (Event(0, 30, "A woman runs."), Event(20, 31, "x")))
    preds = {"v_2": late, "v_9": REFS["v_1"]}
    refs = {k: _dur(v) for k, v in REFS.items()}
    with pytest.warns(SubmissionWarning) as caught:
        evaluate(preds, refs, metrics=["Recall"], source="p.json")
    assert sorted(str(w.message) for w in caught) == [
        "p.json: 1 event ending past the video's duration scored as given; "
        "first: video v_2, event 1 ends at 31 (duration 30)",
        "p.json: 1 predicted video not in the references (e.g. 'v_9') ignored, "
        "as the official scorer does",
    ]


def test_format_scores_table():
    table = format_scores({"METEOR": 0.1, "METEOR@0.5": 0.1, "SODA_c": 0.05}, (0.5,))
    lines = table.splitlines()
    assert "tIoU 0.5" in lines[0] and "mean" in lines[0]
    assert lines[1].split() == ["METEOR", "10.0000", "10.0000"]
    assert lines[2].split() == ["SODA_c", "5.0000"]


def test_cli_eval(tmp_path, capsys, meteor):
    sub = {
        "version": "VERSION 1.0",
        "external_data": {},
        "results": {v: e.to_results() for v, e in REFS.items()},
    }
    ann = {k: _dur(v).to_annotation() for k, v in REFS.items()}
    (tmp_path / "pred.json").write_text(json.dumps(sub))
    (tmp_path / "ref.json").write_text(json.dumps(ann))
    out = tmp_path / "scores.json"
    args = ["eval", "-s", str(tmp_path / "pred.json"), "-r", str(tmp_path / "ref.json")]
    assert main([*args, "--json", str(out), "--no-soda"]) == 0
    printed = capsys.readouterr().out
    assert "METEOR" in printed and "SODA_c" not in printed
    assert json.loads(out.read_text())["Recall"] == 1.0
    assert main([*args, "--json", "-", "--metrics", "Recall"]) == 0
    assert json.loads(capsys.readouterr().out)["Recall"] == 1.0
    ref = str(tmp_path / "ref.json")
    assert main(["eval", "-s", str(tmp_path / "nope.json"), "-r", ref]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err


def _dur(v: VideoEvents) -> VideoEvents:
    return VideoEvents(v.video_id, v.events, duration=max(e.end for e in v.events))


def test_shared_tokenizer_is_reused():
    assert shared_tokenizer() is shared_tokenizer()


def test_meteor_pool_needs_javac(monkeypatch, tmp_path):
    from densevid.metrics.meteor_pool import pool_classpath

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no javac anywhere
    assert pool_classpath(str(tmp_path / "java"), tmp_path / "meteor.jar") is None
