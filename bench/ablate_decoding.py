"""Decoding ablations of trained checkpoints on one split: greedy vs beam, with and
without the time-token grammar. Prints one row per checkpoint and setting with the
field's metrics and the references' log-likelihood (which does not depend on
decoding). Several checkpoints give the training ablations in one table; checkpoints
joined by "+" decode as one ensemble (``densevid.ensemble``).

    .venv/bin/python bench/ablate_decoding.py runs/synthetic/best \
        --features data/synth/features --annotations data/synth/test.json
    .venv/bin/python bench/ablate_decoding.py runs/a/best runs/b/best -s greedy \
        --features data/synth/features --annotations data/synth/test.json
    .venv/bin/python bench/ablate_decoding.py runs/a/best+runs/b/best -s beam4 \
        --features data/synth/features --annotations data/synth/test.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from densevid.checkpoint import load_models
from densevid.data import VideoDataset
from densevid.decoding import DecodingOptions, decode_dataset
from densevid.events import load_annotations, save_submission
from densevid.metrics import evaluate

METRICS = ("SODA_c", "CIDEr", "METEOR", "Bleu_4", "Precision", "Recall", "F1")
SETTINGS = {
    "greedy": DecodingOptions(method="greedy"),
    "beam4": DecodingOptions(method="beam", beam_size=4),
    "greedy-nogrammar": DecodingOptions(method="greedy", constrained=False),
    "beam4-nogrammar": DecodingOptions(method="beam", beam_size=4, constrained=False),
    # boundaries as the time tokens say, without the frame-event head's refinement
    "greedy-norefine": DecodingOptions(method="greedy", refine_frames=0),
    "greedy-refine4": DecodingOptions(method="greedy", refine_frames=4),
    # times read between bins from the probabilities of the neighbouring bins
    "greedy-soft1": DecodingOptions(method="greedy", soft_time=1),
    "greedy-soft2": DecodingOptions(method="greedy", soft_time=2),
    # a bias on </s>: below 0, longer lists of events
    **{
        f"{m}-eos{b:g}": DecodingOptions(method=m, beam_size=4, eos_bias=b)
        for m in ("greedy", "beam")
        for b in (-0.5, -1.0, -2.0, -3.0)
    },
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--features", required=True)
    p.add_argument("--annotations", required=True)
    p.add_argument("-s", "--settings", default=",".join(SETTINGS))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--save",
        type=Path,
        help="also write each submission to SAVE/<checkpoint dir>_<setting>.json "
        "(for bench/diagnose_synth.py)",
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    refs = load_annotations(args.annotations)
    header = ["checkpoint", "setting", *METRICS, "events/video", "loglik/token"]
    print("| " + " | ".join([*header, "s/video"]) + " |")
    print("|" + "---|" * (len(header) + 1))
    for checkpoint in args.checkpoints:
        model = load_models(checkpoint.split("+"))
        dataset = VideoDataset(refs, args.features, model.config, model.time_tokenizer)
        for name in args.settings.split(","):
            t0 = time.perf_counter()
            preds, stats = decode_dataset(
                model, dataset, SETTINGS[name], batch_size=args.batch_size
            )
            dt = (time.perf_counter() - t0) / len(dataset)
            scores = evaluate(preds, [refs], metrics=METRICS)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                stem = "+".join(
                    "_".join(Path(c).resolve().parts[-2:])
                    for c in checkpoint.split("+")
                )
                save_submission(preds.values(), args.save / f"{stem}_{name}.json")
            n_events = sum(len(v) for v in preds.values()) / len(preds)
            row = [checkpoint, name, *(f"{scores[m]:.4f}" for m in METRICS)]
            row += [f"{n_events:.2f}", f"{stats.per_token:.3f}", f"{dt:.3f}"]
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
