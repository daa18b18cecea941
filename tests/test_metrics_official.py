"""densevid.metrics against numbers the official scripts printed.

Provenance of every expected value below (all fractions, rounded nowhere):

- densevid_eval: ranjaykrishna/densevid_eval @ 9d4045a ``evaluate.py``, run through
  its Python-3 copies in ttengwang/PDVC @ 0b025c8: ``densevid_eval3/evaluate2021.py``
  (the current random garbage string) and ``evaluate2018.py`` (``abc123!@#``), with
  all scorers (``-v``), tIoU 0.3/0.5/0.7/0.9 and ``-ppv 1000`` unless stated, with
  the jars of pycocoevalcap 1.2 (PyPI) on OpenJDK 17, from a scratch directory:
  ``main(Namespace(submission=S, references=[R...], tious=T,
  max_proposals_per_video=N, verbose=True, no_lang_eval=0))``; the reported value
  of a metric is ``np.mean`` of its per-tIoU list. Run 2026-11-22.
- SODA_c: fujiso/SODA @ 9cb3e2c (v1.1), METEOR, soda_type "c":
  "separate" = PDVC's ``densevid_eval3/eval_soda.py::eval_soda(S, [R1, R2])`` (each
  file alone, F averaged); "merged" = PDVC's ``eval_tool(S, [R1, R2])``
  (``multi_reference=False``: segments of both files merged per video); "best" =
  ``SODA(ANETCaptions.from_load_files([R1, R2], S, multi_reference=True))``.
- The two README cases (``../shared/data/README.md``) were reproduced by the same
  runs to every printed digit.

The constructed EDGE files cover: a prediction matching several references in both
files, predictions matching nothing (garbage), a caption with a newline, one with
non-ASCII punctuation, one with "7 1/2" (the PTB tokenizer emits U+00A0), one that is
only punctuation (empty after tokenisation), a repeated caption, a prediction for a
video missing from the references, reference videos without predictions (in one
file only), and truncation with ``-ppv 4``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from densevid.events import SubmissionWarning
from densevid.metrics import evaluate_files


@pytest.fixture(autouse=True)
def no_java(request, monkeypatch, tmp_path):
    """Every number here comes from the default (Python) backend: a Java runtime
    that cannot start makes any use of the jars fail (except in the test that
    cross-checks the jars)."""
    if "java" not in request.fixturenames:
        monkeypatch.setenv("DENSEVID_JAVA", str(tmp_path / "no-java"))


TOL = 1e-9  # the issue asks for 1e-5; we agree to rounding (one exception below)
# EDGE_SUBMISSION's video v_e is in no reference file: ignored, as officially
UNKNOWN_V_E = r"1 predicted video not in the references \(e.g. 'v_e'\) ignored"

EDGE_REF_1 = {
    "v_a": {
        "duration": 60.0,
        "timestamps": [[0.0, 10.0], [5.0, 20.0], [18.5, 40.25], [41.0, 59.9]],
        "sentences": [
            "A man is standing in a kitchen.",
            "He cuts an onion with a knife.",
            "The man puts the onion in a pan and stirs it.",
            "He serves the food on a plate.",
        ],
    },
    "v_b": {
        "duration": 30.0,
        "timestamps": [[0.0, 12.3], [12.3, 30.0]],
        "sentences": ["A girl jumps on a trampoline.", "She falls down and laughs."],
    },
    "v_c": {
        "duration": 45.0,
        "timestamps": [[1.0, 44.0]],
        "sentences": ["People are playing soccer on a field."],
    },
}
EDGE_REF_2 = {
    "v_a": {
        "duration": 60.0,
        "timestamps": [[0.0, 12.0], [12.0, 38.0], [38.0, 60.0]],
        "sentences": [
            "A chef stands in the kitchen and talks.",
            "The chef chops an onion and fries it in a pan.",
            "The food is served on a white plate.",
        ],
    },
    "v_b": {
        "duration": 30.0,
        "timestamps": [[0.5, 29.5]],
        "sentences": ["A little girl is jumping on a trampoline in a yard."],
    },
    "v_d": {
        "duration": 20.0,
        "timestamps": [[0.0, 20.0]],
        "sentences": ["A dog runs after a ball."],
    },
}
EDGE_SUBMISSION = {
    "version": "VERSION 1.0",
    "external_data": {"used": False, "details": ""},
    "results": {
        "v_a": [
            {"sentence": "A man is standing in the kitchen.", "timestamp": [0.0, 11.0]},
            {
                "sentence": "The man cuts an onion\nwith a knife.",
                "timestamp": [4.0, 21.0],
            },
            {
                "sentence": "He puts the onion in a pan \u2014 and stirs "
                "\u201cit\u201d.",
                "timestamp": [17.9, 41.3],
            },
            {"sentence": "...", "timestamp": [50.0, 50.5]},
            {"sentence": "He serves 7 1/2 plates of food.", "timestamp": [40.0, 60.0]},
            {"sentence": "A man is standing in a kitchen.", "timestamp": [0.0, 60.0]},
        ],
        "v_b": [
            {
                "sentence": "A girl is jumping on a trampoline.",
                "timestamp": [0.0, 12.3],
            },
            {
                "sentence": "A girl is jumping on a trampoline.",
                "timestamp": [0.2, 29.0],
            },
            {"sentence": "The girl falls down.", "timestamp": [13.0, 14.0]},
        ],
        "v_e": [
            {"sentence": "A video not in the references.", "timestamp": [0.0, 5.0]}
        ],
    },
}

# evaluate2021.py -s edge.json -r edge1.json edge2.json -v
EDGE_2021 = {
    "Bleu_1": 0.27498828720520446,
    "Bleu_2": 0.2394294677526013,
    "Bleu_3": 0.21297137213455491,
    "Bleu_4": 0.19125339480293757,
    "METEOR": 0.14721649330026865,
    "ROUGE_L": 0.22331328024404937,
    "CIDEr": 1.199246646367766,
    "Recall": 0.484375,
    "Precision": 0.29166666666666663,
    "Bleu_1@0.3": 0.25847965381114957,
    "Bleu_1@0.9": 0.275157232683837,
    "Bleu_4@0.5": 0.17966746322092036,
    "Bleu_4@0.7": 0.2231335653236492,
    "METEOR@0.3": 0.1314844770857609,
    "METEOR@0.5": 0.1412577283529951,
    "METEOR@0.7": 0.16372821644349883,
    "METEOR@0.9": 0.15239555131881977,
    "ROUGE_L@0.5": 0.20966776227959666,
    "CIDEr@0.3": 1.0536862439089036,
    "CIDEr@0.9": 1.1434718789219738,
    "Recall@0.9": 0.4375,
    "Precision@0.3": 0.375,
    "Precision@0.9": 0.20833333333333331,
}
# evaluate2018.py, same files: only METEOR differs
EDGE_2018 = {**EDGE_2021, "METEOR": 0.12719527847115075}
del EDGE_2018["METEOR@0.3"], EDGE_2018["METEOR@0.5"]
del EDGE_2018["METEOR@0.7"], EDGE_2018["METEOR@0.9"]
# evaluate2021.py ... -ppv 4 --tious 0.1 0.5
EDGE_2021_PPV4 = {
    "Bleu_1": 0.2892062748674755,
    "Bleu_4": 0.19621991087437385,
    "METEOR": 0.14977479998650337,
    "ROUGE_L": 0.24044138373914853,
    "CIDEr": 1.3213675410416195,
    "Recall": 0.4375,
    "Precision": 0.35416666666666663,
    "METEOR@0.1": 0.14036569050770775,
    "CIDEr@0.5": 1.4986607326581503,
}

# README (densevid_eval via evaluate2021.py) and our re-run of it
TINY_2021 = {
    "Bleu_1": 0.00026276990399395087,
    "Bleu_2": 0.00013485020111843825,
    "Bleu_3": 6.531382215917477e-05,
    "Bleu_4": 2.7627740968637862e-05,
    "METEOR": 0.00014763696065458402,
    "ROUGE_L": 0.00026396204725710824,
    "CIDEr": 0.0003802248320452509,
    "Recall": 0.0006821571418886856,
    "Precision": 0.0010507762185614535,
}
BMT_VAL_1 = {
    "Bleu_1": 0.2178741272887153,
    "Bleu_2": 0.10562418388654009,
    "Bleu_3": 0.04681670228417224,
    "Bleu_4": 0.02068250314109219,
    "METEOR": 0.10742385180808009,
    "ROUGE_L": 0.22525559839341713,
    "CIDEr": 0.4274439988497796,
    "Recall": 1.0,
    "Precision": 1.0,
}
# evaluate2021.py -s bmt_captioning_results_val_1_e26.json -r val_1.json val_2.json
# (GT videos without predictions, two reference files)
BMT_VAL_1_VS_VAL_1_2 = {
    "Bleu_1": 0.19744517102439832,
    "Bleu_2": 0.09639387710352615,
    "Bleu_3": 0.044076093384520176,
    "Bleu_4": 0.01907081935130115,
    "METEOR": 0.09718705474916392,
    "ROUGE_L": 0.20261770574994437,
    "CIDEr": 0.345120376699719,
    "Recall": 0.9117347976408379,
    "Precision": 0.9117347976408379,
}
# evaluate2021.py -s sample_submission_official.json -r val_1.json val_2.json
SAMPLE_2021 = {
    "Bleu_1": 9.637085973690022e-07,
    "Bleu_4": 3.687861361659581e-18,
    "METEOR": 9.712927304355306e-07,
    "ROUGE_L": 1.708806967002097e-06,
    "CIDEr": 1.1871688836638887e-09,
    "Recall": 5.08440105755542e-05,
    "Precision": 7.626601586333131e-05,
}


def _check(got: dict[str, float], expected: dict[str, float], tol=TOL) -> None:
    wrong = {
        k: (v, got.get(k))
        for k, v in expected.items()
        if got.get(k) is None or abs(got[k] - v) > tol
    }
    assert not wrong, f"differs from the official script (official, ours): {wrong}"


@pytest.fixture
def edge(tmp_path: Path) -> tuple[str, list[str]]:
    for name, data in [
        ("edge.json", EDGE_SUBMISSION),
        ("edge1.json", EDGE_REF_1),
        ("edge2.json", EDGE_REF_2),
    ]:
        (tmp_path / name).write_text(json.dumps(data))
    return str(tmp_path / "edge.json"), [
        str(tmp_path / "edge1.json"),
        str(tmp_path / "edge2.json"),
    ]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"soda": False}, EDGE_2021),
        ({"soda": False, "garbage": "2018"}, EDGE_2018),
        ({"soda": False, "max_proposals": 4, "tious": (0.1, 0.5)}, EDGE_2021_PPV4),
        ({"metrics": ["SODA_c"]}, {"SODA_c": 0.20243499902214668}),
        (
            {"metrics": ["SODA_c"], "soda_references": "merged"},
            {"SODA_c": 0.26555386888346816},
        ),
        (
            {"metrics": ["SODA_c"], "soda_references": "best"},
            {"SODA_c": 0.2679687308350943},
        ),
    ],
    ids=["2021", "2018", "ppv4-tious", "soda", "soda-merged", "soda-best"],
)
def test_edge_cases(edge, kwargs, expected):
    submission, refs = edge
    with pytest.warns(SubmissionWarning, match=UNKNOWN_V_E):
        _check(evaluate_files(submission, refs, **kwargs), expected)


def test_java_backend_gives_the_same_numbers(edge, java):
    submission, refs = edge
    with pytest.warns(SubmissionWarning, match=UNKNOWN_V_E):
        _check(evaluate_files(submission, refs, backend="java"), EDGE_2021)


def test_edge_single_reference_file(edge):
    # evaluate2021.py -s edge.json -r edge1.json -v
    submission, refs = edge
    with pytest.warns(SubmissionWarning, match=UNKNOWN_V_E):
        got = evaluate_files(submission, refs[:1], soda=False)
    _check(got, {"METEOR": 0.2039008385312168, "CIDEr": 1.6345586340256})


def _val(shared_data: Path, *names: str) -> list[Path]:
    return [shared_data / "activitynet" / n for n in names]


def test_sample_submission(shared_data):
    sub = shared_data / "predictions" / "sample_submission_official.json"
    refs = _val(shared_data, "val_1.json", "val_2.json")
    got = evaluate_files(sub, refs)
    _check(got, {**SAMPLE_2021, "SODA_c": 0.008093581524599323})
    # evaluate2018.py: identical numbers (every prediction matches a reference)
    _check(evaluate_files(sub, refs, soda=False, garbage="2018"), SAMPLE_2021)


def test_tiny_sample(shared_data):
    sub = shared_data / "predictions" / "chuanqitan_tiny_sample.json"
    refs = _val(shared_data, "val_1.json", "val_2.json")
    # the file repeats one event of v_D4Y6DyRD0kY; the official run scored it twice
    with pytest.warns(SubmissionWarning, match="1 duplicate event"):
        got = evaluate_files(sub, refs)
    _check(got, {**TINY_2021, "SODA_c": 0.04112336428506061})
    with pytest.warns(SubmissionWarning, match="1 duplicate event"):
        got = evaluate_files(sub, refs, garbage="2018", soda_references="merged")
    _check(got, {"METEOR": 0.00014067780224076532, "SODA_c": 0.043232350057824186})


@pytest.mark.slow
def test_bmt_val_1(shared_data):
    """The issue's done-when case (~30 s on an idle 2-core machine)."""
    sub = shared_data / "predictions" / "bmt_captioning_results_val_1_e26.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = evaluate_files(sub, _val(shared_data, "val_1_no_missings.json"))
        soda = evaluate_files(
            sub, _val(shared_data, "val_1.json", "val_2.json"), metrics=["SODA_c"]
        )
        both = evaluate_files(
            sub, _val(shared_data, "val_1.json", "val_2.json"), soda=False
        )
    _check(got, BMT_VAL_1)
    _check(soda, {"SODA_c": 0.07819430351016593})
    # Stanford's PTBTokenizer reads a line-final "T." as an initial or not depending
    # on the line after it in the official script's batch file: for one of the
    # 4,483 videos the official run keeps "capital t." where we (one sentence at a
    # time, our order) get "capital t"; only METEOR sees it, 2e-8 lower here.
    _check(both, BMT_VAL_1_VS_VAL_1_2, tol=1e-7)
