"""Other systems' prediction files are scored as the official scorer scores them.

Each rule of ``densevid.events.load_submission`` and
``densevid.metrics.submission.match_submission`` has a crafted file here and the
numbers the official scripts printed for it:

- densevid_eval: ranjaykrishna/densevid_eval @ 9d4045a ``evaluate.py`` through its
  Python-3 copy ttengwang/PDVC @ 0b025c8 ``densevid_eval3/evaluate2021.py`` (its only
  changes are Python 3 syntax and always computing Recall/Precision), with the jars of
  pycocoevalcap 1.2 on OpenJDK 17: ``main(Namespace(submission=S, references=[REF_1,
  REF_2], tious=[0.3, 0.5, 0.7, 0.9], max_proposals_per_video=1000, verbose=True,
  no_lang_eval=0))``; a metric's value is ``np.mean`` of its per-tIoU list.
- SODA_c: fujiso/SODA @ 9cb3e2c (v1.1) as PDVC's ``eval_soda`` runs it: METEOR,
  soda_type "c", each reference file alone (``multi_reference=False``), F averaged.

Run 2026-12-04 on the files these dicts write (``json.dumps``). Where the official
script cannot read a file (no ``results`` wrapper: IOError; ``caption`` for
``sentence``: KeyError; times as strings: TypeError), densevid reads it as the
official file it stands for, and the expected numbers are that file's (``base``),
measured by the same run.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from densevid.cli import main
from densevid.errors import DensevidError
from densevid.events import SubmissionWarning, load_submission
from densevid.metrics import evaluate_files

TOL = 1e-9

REF_1 = {
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
REF_2 = {
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
}


def ev(start: float, end: float, sentence: str) -> dict:
    return {"sentence": sentence, "timestamp": [start, end]}


def submission(results: dict) -> dict:
    return {"version": "VERSION 1.0", "results": results, "external_data": {}}


A = [
    ev(0.0, 11.0, "A man is standing in the kitchen."),
    ev(4.0, 21.0, "The man cuts an onion with a knife."),
    ev(17.9, 41.3, "He puts the onion in a pan and stirs it."),
    ev(40.0, 60.0, "He serves the food on a plate."),
]
B = [
    ev(0.0, 12.3, "A girl is jumping on a trampoline."),
    ev(13.0, 29.0, "The girl falls down and laughs."),
]

# Files the official script reads, and what densevid warns about each (the finding
# part of each warning; one warning per kind).
SCORED = {
    "base": (submission({"v_a": A, "v_b": B}), []),
    # the user's -0.001; -2.5 moves a tIoU below 0.7 (11 / 13.8)
    "negative": (
        submission(
            {
                "v_a": [ev(-0.001, 11.0, A[0]["sentence"]), *A[1:]],
                "v_b": [ev(-2.5, 11.0, B[0]["sentence"]), B[1]],
            }
        ),
        ["2 events with a negative time"],
    ),
    # reversed in the middle of the lists; swapped, [4, 21] would match [5, 20]
    "reversed": (
        submission(
            {
                "v_a": [A[0], ev(21.0, 4.0, A[1]["sentence"]), *A[2:]],
                "v_b": [B[0], ev(50.0, 42.0, "She laughs."), B[1]],
            }
        ),
        ["2 events with end < start", "1 event ending past the video's duration"],
    ),
    "zero_length": (
        submission({"v_a": [A[0], ev(10.0, 10.0, "A man cuts."), *A[1:]], "v_b": B}),
        ["1 zero-length event"],
    ),
    "empty_sentence": (
        submission(
            {
                "v_a": [A[0], ev(4.0, 21.0, ""), *A[2:]],
                "v_b": [B[0], ev(13.0, 29.0, "   ")],
            }
        ),
        ["2 events with an empty sentence"],
    ),
    "duplicate": (
        submission({"v_a": [A[0], A[0], *A[1:], A[3]], "v_b": [*B, B[1]]}),
        ["3 duplicate events"],
    ),
    "past_end": (
        submission(
            {
                "v_a": A,
                "v_b": [
                    B[0],
                    ev(13.0, 31.5, B[1]["sentence"]),
                    ev(35.0, 40.0, "A dog runs."),
                ],
            }
        ),
        ["2 events ending past the video's duration"],
    ),
    "unknown_id": (
        submission({"v_a": A, "v_b": B, "v_zzz": B}),
        ["1 predicted video not in the references (e.g. 'v_zzz')"],
    ),
    "no_match": (
        submission({"v_x": A, "v_y": B}),
        ["none of the 2 predicted videos in the references"],
    ),
    "bad_score": (
        submission(
            {
                "v_a": [{**A[0], "score": "high"}, *A[1:]],
                "v_b": [{**B[0], "score": None}, B[1]],  # null: no score, no finding
            }
        ),
        ["1 event with a score that is not a number"],
    ),
    # "a" and "v_a.mp4" both stand for v_a: neither is scored (nor is either
    # officially)
    "ambiguous_id": (
        submission({"a": A, "v_a.mp4": A, "v_b": B}),
        [
            "2 predicted video ids matching a reference id only loosely, and not "
            "uniquely ('a', 'v_a.mp4')"
        ],  # fmt: skip
    ),
    # all of the above in one file
    "all_scored": (
        submission(
            {
                "v_a": [
                    ev(-0.5, 11.0, A[0]["sentence"]),
                    A[0],
                    ev(21.0, 4.0, "He cuts."),
                    ev(10.0, 10.0, ""),
                    {**A[2], "score": "x"},
                    ev(40.0, 61.0, A[3]["sentence"]),
                ],
                "v_b": [B[0], B[0]],
                "v_q": B,
            }
        ),
        [
            "1 event with a score that is not a number",
            "1 event with a negative time",
            "1 event with end < start",
            "1 zero-length event",
            "1 event with an empty sentence",
            "1 duplicate event",
            "1 predicted video not in the references",
            "1 event ending past the video's duration",
        ],
    ),
}

# What the official scripts printed for each file of SCORED.
OFFICIAL = {
    "base": {
        "Bleu_1": 0.43401490151355365,
        "Bleu_2": 0.3823343218657158,
        "Bleu_3": 0.33404460319628654,
        "Bleu_4": 0.28610782133311297,
        "METEOR": 0.2561163046747156,
        "ROUGE_L": 0.4576770687417673,
        "CIDEr": 3.002862518164487,
        "Recall": 0.6458333333333334,
        "Precision": 0.6458333333333334,
        "SODA_c": 0.32270899519974927,
    },
    "negative": {
        "Bleu_1": 0.4019636194647371,
        "Bleu_2": 0.3552653936973318,
        "Bleu_3": 0.31437954661901213,
        "Bleu_4": 0.2745240264597912,
        "METEOR": 0.24579669211817082,
        "ROUGE_L": 0.42517493745446977,
        "CIDEr": 2.83887607413037,
        "Recall": 0.6041666666666666,
        "Precision": 0.6041666666666666,
        "SODA_c": 0.30423460928586354,
    },
    "reversed": {
        "Bleu_1": 0.4023280298601891,
        "Bleu_2": 0.3561440489212724,
        "Bleu_3": 0.3140359079732318,
        "Bleu_4": 0.269418538313635,
        "METEOR": 0.23899319089531737,
        "ROUGE_L": 0.37010282191953503,
        "CIDEr": 2.412065486729386,
        "Recall": 0.625,
        "Precision": 0.47222222222222215,
        "SODA_c": 0.27093483230740606,
    },
    "zero_length": {
        "Bleu_1": 0.42757953553528366,
        "Bleu_2": 0.3779228581961688,
        "Bleu_3": 0.33153986293476817,
        "Bleu_4": 0.28562679809603214,
        "METEOR": 0.25163493772167195,
        "ROUGE_L": 0.42678899435535095,
        "CIDEr": 2.7841054383682655,
        "Recall": 0.6458333333333334,
        "Precision": 0.5833333333333333,
        "SODA_c": 0.30026411443724643,
    },
    "empty_sentence": {
        "Bleu_1": 0.302907872046674,
        "Bleu_2": 0.26315405981648,
        "Bleu_3": 0.22457327239259667,
        "Bleu_4": 0.16667591805034707,
        "METEOR": 0.18846938159658944,
        "ROUGE_L": 0.3240644073843603,
        "CIDEr": 1.9439059485772217,
        "Recall": 0.6458333333333334,
        "Precision": 0.6458333333333334,
        "SODA_c": 0.25252418038183855,
    },
    "duplicate": {
        "Bleu_1": 0.42498539941532376,
        "Bleu_2": 0.3744857687238068,
        "Bleu_3": 0.3293564993873001,
        "Bleu_4": 0.285323338918435,
        "METEOR": 0.25172406614796733,
        "ROUGE_L": 0.4542540051435242,
        "CIDEr": 2.62620189139757,
        "Recall": 0.6458333333333334,
        "Precision": 0.6527777777777778,
        "SODA_c": 0.25539090945385257,
    },
    "past_end": {
        "Bleu_1": 0.38977677496061547,
        "Bleu_2": 0.34408976781661615,
        "Bleu_3": 0.3026270930590349,
        "Bleu_4": 0.25363311912262887,
        "METEOR": 0.2318077949438607,
        "ROUGE_L": 0.3736915870970773,
        "CIDEr": 2.4860722098667645,
        "Recall": 0.6041666666666666,
        "Precision": 0.5069444444444444,
        "SODA_c": 0.2949019464361677,
    },
    "ambiguous_id": {
        "Bleu_1": 0.1944645129977104,
        "Bleu_2": 0.17043393285793892,
        "Bleu_3": 0.14095294197855193,
        "Bleu_4": 0.1073123787199261,
        "METEOR": 0.12784034224292498,
        "ROUGE_L": 0.22149264286093495,
        "CIDEr": 1.2890726953317666,
        "Recall": 0.3333333333333333,
        "Precision": 0.3333333333333333,
        "SODA_c": 0.2543457130664756,
    },
    "all_scored": {
        "Bleu_1": 0.45016632738258255,
        "Bleu_2": 0.3882979444618123,
        "Bleu_3": 0.3198685584941847,
        "Bleu_4": 0.1956841827947106,
        "METEOR": 0.26360580926928273,
        "ROUGE_L": 0.4299455537868203,
        "CIDEr": 1.3486381695063174,
        "Recall": 0.47916666666666663,
        "Precision": 0.5277777777777777,
        "SODA_c": 0.21428638584170576,
    },
}
# Printed the same numbers as "base" (the extra video, the scores are not read):
OFFICIAL["unknown_id"] = OFFICIAL["bad_score"] = OFFICIAL["base"]
# densevid_eval printed 0.0 for every metric; SODA printed NaN (a mean over no
# video), which densevid reports as 0.
OFFICIAL["no_match"] = {k: 0.0 for k in OFFICIAL["base"]}

# Files the official script refuses or misreads, each standing for "base".
AS_BASE = {
    "bare": ({"v_a": A, "v_b": B}, ["no 'results' wrapper"]),
    # SODA reads this one (it needs only 'results') and printed base's SODA_c
    "no_fields": (
        {"results": {"v_a": A, "v_b": B}},
        ["no 'version' or 'external_data'"],
    ),
    "field_names": (
        submission(
            {
                "v_a": [
                    {"caption": e["sentence"], "timestamp": e["timestamp"]} for e in A
                ],
                "v_b": [{"text": e["sentence"], "segment": e["timestamp"]} for e in B],
            }
        ),
        [
            "6 events with 'caption' for 'sentence', 'text' for 'sentence', 'segment' "
            "for 'timestamp'"
        ],  # fmt: skip
    ),
    "string_times": (
        submission({"v_a": [{**A[0], "timestamp": ["0", "11.0"]}, *A[1:]], "v_b": B}),
        ["1 event with times written as strings"],
    ),
    # the official scorer ignores these ids: it printed 0.0 for every metric (and
    # SODA NaN); densevid matches them, a deliberate difference
    "loose_id": (
        submission({"a.mp4": A, "b": B}),
        [
            "2 predicted video ids matching a reference id only without a file "
            "extension or with the 'v_' prefix changed ('a.mp4' -> 'v_a', 'b' -> "
            "'v_b')"
        ],  # fmt: skip
    ),
}


def _check(got: dict[str, float], expected: dict[str, float]) -> None:
    wrong = {
        k: (v, got.get(k))
        for k, v in expected.items()
        if got.get(k) is None or abs(got[k] - v) > TOL
    }
    assert not wrong, f"differs from the official scripts (official, ours): {wrong}"


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("refs")
    paths = []
    for name, data in (("ref1.json", REF_1), ("ref2.json", REF_2)):
        (d / name).write_text(json.dumps(data))
        paths.append(str(d / name))
    return paths


def _write(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _evaluate(path: str, refs: list[str], **kwargs) -> tuple[dict, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = evaluate_files(path, refs, **kwargs)
    found = [str(w.message) for w in caught if w.category is SubmissionWarning]
    return scores, found


def _assert_findings(found: list[str], expected: list[str], path: str) -> None:
    assert len(found) == len(expected), found  # one warning per kind
    for finding in expected:
        assert sum(line.startswith(f"{path}: {finding}") for line in found) == 1, (
            finding,
            found,
        )


@pytest.mark.parametrize("name", sorted(SCORED))
def test_scored_as_the_official_scorer_scores(name, refs, tmp_path):
    data, expected = SCORED[name]
    path = _write(tmp_path, name, data)
    scores, found = _evaluate(path, refs)
    _check(scores, OFFICIAL[name])
    _assert_findings(found, expected, path)
    if expected:
        with pytest.raises(DensevidError, match="refused by --strict: ") as e:
            evaluate_files(path, refs, strict=True)
        # reading the file refuses it before the references are looked at
        assert any(finding in str(e.value) for finding in expected)


@pytest.mark.parametrize("name", sorted(AS_BASE))
def test_other_shapes_read_as_the_official_file(name, refs, tmp_path):
    data, expected = AS_BASE[name]
    path = _write(tmp_path, name, data)
    scores, found = _evaluate(path, refs)
    _check(scores, OFFICIAL["base"])
    _assert_findings(found, expected, path)
    strict = re.escape(f"refused by --strict: {expected[0]}")
    with pytest.raises(DensevidError, match=strict):
        evaluate_files(path, refs, strict=True)


# v_a twice (the first list of one wrong event) and an event with two timestamps:
# Python's JSON reader keeps the last of each, in the official script too. The
# official numbers below are the scripts' (run as above) on this text as written.
REPEATED_KEYS = """{"version": "VERSION 1.0", "external_data": {}, "results": {
 "v_a": [{"sentence": "A dog runs.", "timestamp": [30.0, 33.0]}],
 "v_b": [{"sentence": "A girl is jumping on a trampoline.", "timestamp": [0.0, 12.3]},
         {"sentence": "The girl falls down and laughs.", "timestamp": [13.0, 29.0]}],
 "v_a": [{"sentence": "A man is standing in the kitchen.", "timestamp": [0.0, 11.0]},
         {"sentence": "The man cuts an onion with a knife.", "timestamp": [4.0, 21.0]},
         {"sentence": "He puts the onion in a pan and stirs it.",
          "timestamp": [17.9, 41.3]},
         {"sentence": "He serves the food on a plate.", "timestamp": [40.0, 60.0],
          "timestamp": [40.0, 50.0]}]}}"""
OFFICIAL_REPEATED_KEYS = {
    "Bleu_1": 0.40005637914742614,
    "Bleu_2": 0.3532088948950928,
    "Bleu_3": 0.31025146546170534,
    "Bleu_4": 0.26427790880268676,
    "METEOR": 0.2476451414272708,
    "ROUGE_L": 0.41348996450556547,
    "CIDEr": 2.7063458958706237,
    "Recall": 0.5833333333333334,
    "Precision": 0.5833333333333334,
    "SODA_c": 0.28195665065478737,
}


def test_repeated_keys_read_as_the_official_scorer_reads_them(refs, tmp_path):
    path = tmp_path / "repeated.json"
    path.write_text(REPEATED_KEYS)
    scores, found = _evaluate(str(path), refs)
    _check(scores, OFFICIAL_REPEATED_KEYS)
    _assert_findings(
        found, ["2 keys repeated in a JSON object ('timestamp', 'v_a')"], str(path)
    )


def test_warning_words(tmp_path):
    """One line per kind, counted, naming the first case (the issue's wording)."""
    events = [ev(5.0, 2.0, "a"), ev(1.0, 3.0, "b"), ev(9.0, 8.0, "c"), ev(7, 6, "d")]
    path = _write(tmp_path, "s", submission({"v_a": events}))
    with pytest.warns(SubmissionWarning) as caught:
        load_submission(path)
    assert [str(w.message) for w in caught] == [
        f"{path}: 3 events with end < start scored as they fall (tIoU 0); "
        "first: video v_a, event 0 [5, 2]"
    ]
    with pytest.raises(DensevidError) as e:
        load_submission(path, strict=True)
    assert str(e.value) == (
        f"{path}: refused by --strict: 3 events with end < start "
        "(first: video v_a, event 0 [5, 2])"
    )


def test_findings_count_only_the_events_scored(tmp_path):
    events = [A[0], A[0], ev(3.0, 1.0, "x")]
    path = _write(tmp_path, "s", submission({"v_a": events}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reversed third event is cut
        videos = load_submission(path, max_per_video=1)
    assert len(videos["v_a"]) == 1


def _warning_lines(text: str, prefix: str) -> list[str]:
    return sorted(
        line.strip()[len(prefix) :]
        for line in text.splitlines()
        if line.strip().startswith(prefix)
    )


def test_check_and_eval_say_the_same(refs, tmp_path, capsys):
    """``check -r`` gives the warnings ``eval`` gives, in the same words; without
    references, those of the file alone; ``--strict`` refuses the same."""
    data, expected = SCORED["all_scored"]
    path = _write(tmp_path, "all", data)
    assert main(["check", path, "-r", *refs]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: submission, 3 videos, 10 events; 2 of the 3 ")
    checked = _warning_lines(out, "warning: ")
    assert len(checked) == len(expected)
    assert main(["eval", "-s", path, "-r", *refs, "--metrics", "Recall"]) == 0
    evaluated = _warning_lines(capsys.readouterr().err, "warning: ")
    assert evaluated == checked
    assert main(["check", path]) == 0  # no references: ids and durations unknown
    alone = _warning_lines(capsys.readouterr().out, "warning: ")
    assert set(alone) < set(checked) and len(alone) == len(checked) - 2
    assert main(["check", "--strict", path, "-r", *refs]) == 1
    check_error = capsys.readouterr().err.strip()
    assert main(["eval", "--strict", "-s", path, "-r", *refs]) == 2
    eval_error = capsys.readouterr().err.strip()
    assert check_error == eval_error
    assert check_error.startswith(f"error: {path}: refused by --strict: ")
    assert len(check_error.splitlines()) == 1


def test_check_reversed_events_are_warnings_without_strict(tmp_path, capsys):
    data, _ = SCORED["reversed"]
    path = _write(tmp_path, "rev", data)
    assert main(["check", path]) == 0
    assert "2 events with end < start scored as they fall" in capsys.readouterr().out
    assert main(["check", "--strict", path]) == 1
    assert "refused by --strict: 2 events with end < start" in capsys.readouterr().err


def test_check_submission_without_results(tmp_path, capsys):
    data = {"version": "VERSION 1.0", "external_data": {}, "result": {"v_a": A}}
    path = _write(tmp_path, "typo", data)
    assert main(["check", path]) == 1
    err = capsys.readouterr().err
    assert "a submission without 'results' (has 'version', 'external_data'" in err
    assert "video version" not in err
