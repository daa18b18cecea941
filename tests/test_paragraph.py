"""Paragraph evaluation (``densevid eval --paragraph``) against the numbers of the
reference implementation, PDVC @ 0b025c8 ``densevid_eval3/para_evaluate.py``
(``ANETcaptions(refs, submission, all_scorer=True).evaluate()``), run with the jars
of pycocoevalcap 1.2 on OpenJDK 17. Run 2026-12-04.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from densevid.cli import main
from densevid.events import Event, VideoEvents, load_submission
from densevid.metrics.paragraph import (
    evaluate_paragraphs,
    load_paragraph_references,
    paragraph_of,
    paragraph_words,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOL = 1e-9

REF_1 = {
    "v_a": "A man is standing in a kitchen.  He cuts an onion with a knife. The man "
    "puts the onion in a pan and stirs it.",
    "v_b": "A girl jumps on a trampoline. She falls down and laughs.",
    "v_c": "People are playing soccer on a field.",
}
REF_2 = {
    "v_a": "A chef stands in the kitchen and talks. The chef chops an onion and fries "
    "it in a pan. The food is served on a white plate.",
    "v_b": "A little girl is jumping on a trampoline in a yard.",
    "v_d": "A dog runs after a ball.",
}
SUBMISSION = {
    "version": "VERSION 1.0",
    "external_data": {"used": False, "details": ""},
    "results": {
        "v_a": [
            {"sentence": "A man is standing in the kitchen", "timestamp": [0.0, 11.0]},
            {"sentence": "The man cuts 2 onions with a knife!", "timestamp": [4.0, 21]},
            {"sentence": "He serves 7 1/2 plates of food...", "timestamp": [40, 60]},
        ],
        "v_b": [
            {"sentence": "A girl is jumping on a trampoline.", "timestamp": [0, 12.3]},
            {"sentence": "The girl's falling down.", "timestamp": [13.0, 14.0]},
        ],
        "v_c": [{"sentence": "...", "timestamp": [0.0, 5.0]}],
        "v_e": [{"sentence": "A video not in the references.", "timestamp": [0, 5]}],
    },
}
# para_evaluate.py -s sub.json -r ref1.json ref2.json --all_scorer
EXPECTED = {
    "Bleu_1": 0.41514054646264503,
    "Bleu_2": 0.3466240658365245,
    "Bleu_3": 0.2819302826108589,
    "Bleu_4": 0.2237798851132616,
    "METEOR": 0.2367599299645775,
    "ROUGE_L": 0.26428552769070013,
    "CIDEr": 1.034639673642977,
}
# BMT's val_1 file, each video's events sorted by start (the reference joins them in
# file order), against val_1.json and val_2.json as paragraphs
# (load_paragraph_references: sentences in time order)
BMT_VAL_1 = {
    "Bleu_1": 0.44346568075871845,
    "Bleu_2": 0.26100894910668293,
    "Bleu_3": 0.15599553615064116,
    "Bleu_4": 0.0954131407204696,
    "METEOR": 0.14691664741370924,
    "ROUGE_L": 0.2723583189311258,
    "CIDEr": 0.16786973749853115,
}


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_text_keeps_letters_only():
    assert paragraph_words("He's 7 1/2 ft. TALL--really!") == "he s ft tall really"
    video = VideoEvents("v", (Event(5.0, 9.0, "second"), Event(1.0, 4.0, "first")))
    assert paragraph_of(video) == "first. second. "


def test_reference_shapes(tmp_path):
    para = write(tmp_path / "para.json", {"v_x": "One. Two."})
    annotations = write(
        tmp_path / "anet.json",
        {
            "v_x": {
                "duration": 10.0,
                "timestamps": [[5.0, 9.0], [0.0, 4.0]],
                "sentences": ["Two", "One"],
            }
        },
    )
    assert load_paragraph_references(para) == {"v_x": "One. Two."}
    assert load_paragraph_references(annotations) == {"v_x": "One. Two. "}


@pytest.mark.parametrize("backend", ["python", "java"])
def test_equals_reference_implementation(tmp_path, backend, request):
    if backend == "java":
        request.getfixturevalue("java")
    refs = [load_paragraph_references(write(tmp_path / "r1.json", REF_1))]
    refs.append(load_paragraph_references(write(tmp_path / "r2.json", REF_2)))
    preds = load_submission(write(tmp_path / "s.json", SUBMISSION))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = evaluate_paragraphs(preds, refs, backend=backend)
    assert any("v_e" in str(w.message) for w in caught)  # ignored, and said so
    assert scores == pytest.approx(EXPECTED, abs=TOL)


def test_cli_paragraph(tmp_path, capsys):
    r1, r2 = write(tmp_path / "r1.json", REF_1), write(tmp_path / "r2.json", REF_2)
    sub = write(tmp_path / "s.json", SUBMISSION)
    out = tmp_path / "scores.json"
    args = ["eval", "--paragraph", "-s", sub, "-r", r1, r2, "--json", out]
    assert main(list(map(str, args))) == 0
    assert "METEOR" in capsys.readouterr().out
    assert json.loads(out.read_text()) == pytest.approx(EXPECTED, abs=TOL)


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} (../shared/data) is absent")
def test_bmt_paragraphs_equal_reference(tmp_path):
    sub = json.loads(
        (DATA / "predictions/bmt_captioning_results_val_1_e26.json").read_text()
    )
    for events in sub["results"].values():
        events.sort(key=lambda e: e["timestamp"][0])
    path = write(tmp_path / "sorted.json", sub)
    refs = [
        load_paragraph_references(DATA / f"activitynet/val_{n}.json") for n in (1, 2)
    ]
    scores = evaluate_paragraphs(load_submission(path, max_per_video=None), refs)
    assert scores == pytest.approx(BMT_VAL_1, abs=TOL)
