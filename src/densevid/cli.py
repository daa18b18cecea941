"""The ``densevid`` command: one argparse subcommand per public function.

Each subcommand is a pair ``add_<name>(subparsers)`` / ``run_<name>(args) -> int`` and
is listed in ``COMMANDS``. Library errors (``DensevidError``) become one line on stderr
and exit status 2; nothing else here knows about the library's internals.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any

from densevid import __version__
from densevid.config import METHODS, DecodingOptions, ProposalOptions, parse_value
from densevid.errors import DensevidError, plural

logger = logging.getLogger("densevid")

# Exit statuses (README, "Exit status and interruption")
EXIT_OK = 0  # every requested output was written
EXIT_PARTIAL = 1  # some inputs failed; the others were done
EXIT_USAGE = 2  # a bad argument or input, said in one line; nothing was done
EXIT_FAILED = 3  # every input failed; nothing was written
EXIT_SIGINT = 130  # interrupted (Ctrl-C): what was complete is kept
EXIT_SIGTERM = 143  # terminated (SIGTERM): likewise


def exit_status(n_done: int, n_failed: int) -> int:
    """0 when nothing failed, 1 when some inputs failed and others were done, 3
    when every one failed."""
    if n_failed == 0:
        return EXIT_OK
    return EXIT_PARTIAL if n_done else EXIT_FAILED


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in epilogs as written and shows defaults."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "%(default)" not in text
            and action.default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _subparser(
    sub: argparse._SubParsersAction, name: str, help: str, example: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=_HelpFormatter,
    )


def add_dataclass_flags(
    p: argparse.ArgumentParser, cls: type, helps: Mapping[str, str]
) -> None:
    """One flag per field of ``cls`` named in ``helps`` (``beam_size`` ->
    ``--beam-size``), with the field's default and type; a boolean that defaults to
    true gets ``--no-<field>``."""
    for f in fields(cls):
        if f.name not in helps:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if isinstance(default, bool):
            names = [f"--no-{f.name.replace('_', '-')}"] if default else [flag]
            action = "store_false" if default else "store_true"
            if f.name in FLAG_ALIASES:
                names.append(FLAG_ALIASES[f.name])
            p.add_argument(*names, dest=f.name, action=action, help=helps[f.name])
            continue
        kwargs: dict[str, Any] = {"default": default, "help": helps[f.name]}
        if f.name in FLAG_CHOICES:
            kwargs["choices"] = FLAG_CHOICES[f.name]
        elif default is not None:
            kwargs["type"] = type(default)
        p.add_argument(flag, **kwargs)


def dataclass_from_flags(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """An instance of ``cls`` from the flags ``add_dataclass_flags`` made."""
    given = {
        f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)
    }
    return cls(**given, **extra)


# DecodingOptions' fields as flags of predict and caption
DECODING_HELP = {
    "method": "search: beam or greedy",
    "beam_size": "beams for --method beam",
    "max_length": "most generated tokens per video",
    "constrained": "decode without the time-token grammar (ablation)",
    "length_penalty": "beam-score exponent on length (transformers' meaning)",
    "refine_frames": "move each boundary to the frame-event head's peak within this "
    "many frames (models trained with model.frame_events; 0: off)",
    "soft_time": "place each time between bins by the model's probabilities over "
    "this many bins either side of the chosen one (0: the bin itself)",
    "eos_bias": "added to the score of ending the list of events at every step: "
    "below 0 (e.g. -2) more, less certain events (recall for precision)",
}
# ProposalOptions' fields as flags of predict --two-stage
PROPOSAL_HELP = {
    "min_score": "with --two-stage: drop proposals whose objectness is below this "
    "(each video keeps its best one)",
    "nms_threshold": "with --two-stage: drop a proposal overlapping a better one by "
    "more than this tIoU (non-maximum suppression)",
    "max_proposals": "with --two-stage: the most proposals captioned per video",
}
FLAG_CHOICES = {"method": list(METHODS)}
FLAG_ALIASES = {"constrained": "--no-constraint"}  # the flag's earlier name


def _add_recursive_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-recursive",
        dest="recursive",
        action="store_false",
        help="look for videos only at the top of the directories given, not in "
        "their subfolders",
    )


def _add_partial_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="use the decodable part of a truncated or damaged video (its true "
        "duration) instead of failing it",
    )


def _add_run_options(p: argparse.ArgumentParser, config_class: str) -> None:
    """--config, --set and --no-resume, shared by the training-run commands."""
    p.add_argument("--config", help=f"YAML config ({config_class} fields)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted for sections: model.d_model=128)",
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start afresh even if OUTPUT/last exists (it is overwritten)",
    )


def _run_overrides(args: argparse.Namespace) -> list[str]:
    return [*args.overrides, *(["resume=false"] if args.no_resume else [])]


def _print_summary(summary: dict) -> None:
    """The run's JSON summary, once: from rank 0 under torchrun."""
    import json
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=1))


# --- check -------------------------------------------------------------------------


def add_check(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "check",
        "validate annotation or submission files and summarise them; a "
        "submission gets the warnings densevid eval would give, in its words. "
        "Annotations in YouCook2's and ViTT's released layouts are recognised and, "
        "with -o, written in the ActivityNet format",
        "densevid check preds.json -r val_1.json val_2.json\n"
        "  densevid check youcookii_annotations_trainval.json --subset training "
        "-o yc2_train.json\n"
        "  densevid check ViTT-annotations.json --durations videos/ "
        "--id-mapping id_mapping.json -o vitt.json",
    )
    p.add_argument(
        "files",
        nargs="+",
        help="annotation or submission files (FILE#SUBSET names a subset)",
    )
    p.add_argument(
        "-r",
        "--references",
        nargs="+",
        help="reference files: also match each submission's video ids and "
        "durations to them, as densevid eval does",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="make every warning an error: for a submission, each oddity "
        "densevid eval --strict refuses (ids and durations only with -r); for "
        "annotations, reversed segments and ends past the duration",
    )
    p.add_argument(
        "--subset",
        help="the subset of a YouCook2 file to read (training, validation); "
        "without it each subset is summarised",
    )
    p.add_argument(
        "--durations",
        metavar="DIR",
        help="ViTT: the videos (probed) or their FEATURES directory (sidecars' "
        "duration), by video id; ViTT gives chapter starts only",
    )
    p.add_argument(
        "--id-mapping",
        metavar="FILE",
        help="ViTT: id_mapping.json, from YouTube-8M ids to YouTube ids",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT.json",
        help="write the annotations read (one file, one subset) in the "
        "ActivityNet format, to name in configs and commands",
    )


def run_check(args: argparse.Namespace) -> int:
    from densevid.annotations import split_subset, subsets_of, video_durations
    from densevid.events import (
        is_submission,
        load_submission,
        read_annotation_file,
        read_json,
        save_annotations,
    )

    def counted(videos: Mapping[str, Any]) -> str:
        n_events = sum(len(v) for v in videos.values())
        return f"{len(videos)} videos, {n_events} events"

    if args.output and len(args.files) != 1:
        raise DensevidError("check -o writes one file: give one annotation FILE")
    durations = video_durations(args.durations) if args.durations else None
    refs = None
    if args.references:  # densevid.metrics only when asked: it loads numpy and more
        from densevid.metrics.submission import load_references, match_submission

        refs = load_references(args.references)
    failed = 0
    for path in args.files:
        try:
            file, named = split_subset(path)
            data = read_json(file, lines=True)
            matched = None
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if named is None and is_submission(data):
                    if args.output:
                        raise DensevidError(
                            f"{path}: a submission; -o writes annotations"
                        )
                    videos = load_submission(path, strict=args.strict)
                    line = f"{path}: submission, " + counted(videos)
                    if refs is not None:
                        matched = match_submission(
                            videos, refs, strict=args.strict, source=str(path)
                        )
                        n_refs = len({v for r in refs for v in r})
                        line += (
                            f"; {len(matched)} of the {n_refs} reference videos "
                            "predicted"
                        )
                    print(line)
                else:
                    held = subsets_of(data)
                    each = (
                        list(held)
                        if len(held) > 1 and not (named or args.subset or args.output)
                        else [args.subset]
                    )
                    read = [
                        read_annotation_file(
                            path,
                            strict=args.strict,
                            subset=subset,
                            durations=durations,
                            id_mapping=args.id_mapping,
                        )
                        for subset in each
                    ]
                    if len(read) == 1:
                        found = read[0]
                        print(
                            f"{path}: annotations, {counted(found.videos)}; "
                            f"{found.describe()}"
                        )
                    else:
                        print(
                            f"{path}: annotations, {read[0].layout} layout with "
                            f"{len(read)} subsets; name one to use it ({path}#"
                            f"{each[0]}, or --subset {each[0]})"
                        )
                        for found in read:
                            print(f"  {found.subset}: {counted(found.videos)}")
                    if args.output:
                        save_annotations(read[0].videos.values(), args.output)
                        print(
                            f"wrote {args.output}: "
                            f"{plural(len(read[0].videos), 'video')}, ActivityNet "
                            "Captions format"
                        )
            for w in caught:
                print(f"  warning: {w.message}")
        except DensevidError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


# --- extract -----------------------------------------------------------------------


def add_extract(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "extract",
        "extract per-video features (visual, audio, speech) into a resumable cache",
        "densevid extract videos/ -o feats/ --features pixels,logmel,subtitles "
        "--workers 2\n  densevid extract videos/ -o feats/ --features clip "
        "--clip-model openai/clip-vit-base-patch32 --shard 0/8\n"
        "  densevid extract videos/ -o feats/ --features pixels "
        "--option pixels.tint=true --option pixels.timing=true\n"
        "  densevid extract videos/ -o feats/ --engine ray --address auto\n"
        "  densevid extract videos/ -o feats/ --check --webdataset   # after --shard "
        "jobs\n"
        "  densevid extract --list",
    )
    p.add_argument("videos", nargs="*", help="video files and/or directories")
    _add_recursive_option(p)
    p.add_argument("-o", "--output", help="FEATURES directory (written incrementally)")
    p.add_argument(
        "--features",
        default="pixels",
        help="comma-separated extractors (see --list)",
    )
    p.add_argument("--list", action="store_true", help="list the extractors and exit")
    p.add_argument(
        "--shard", help="INDEX/COUNT: this job's share of the videos, e.g. 0/8"
    )
    p.add_argument(
        "--workers",
        type=int,
        help="parallel processes (default: 1; --engine ray: one per CPU of the "
        "cluster, or per GPU for extractors with a model)",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this machine's processes; ray: a Ray cluster (pip install "
        "'densevid[ray]'), every node seeing VIDEOS and FEATURES at the same paths",
    )
    p.add_argument(
        "--address",
        help="--engine ray: the cluster to join (auto, HOST:PORT); default: start "
        "a Ray of this machine for the run, on the loopback address",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="more tries for a video whose extractor raised an unexpected error (a "
        "bad input is not retried) or whose Ray worker died",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="extract nothing: check that every video has every feature, made with "
        "these options (after --shard jobs), list what is missing on stdout, exit 1 "
        "if any is; with --webdataset then pack the shards",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="redo outputs that are complete"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="kept for old scripts: any failed video already gives a non-zero exit",
    )
    _add_partial_option(p)
    p.add_argument(
        "--webdataset",
        action="store_true",
        help="also pack the outputs into tar shards in FEATURES/webdataset",
    )
    p.add_argument("--shard-size", type=int, default=1000, help="videos per tar")
    g = p.add_argument_group("extractor options")
    g.add_argument("--fps", type=float, help="rows per second of visual extractors")
    g.add_argument("--size", type=int, help="pixels: thumbnail side in px")
    g.add_argument("--clip-model", help="clip: hub name or local directory")
    g.add_argument("--batch-size", type=int, help="clip: frames per batch")
    g.add_argument("--device", help="clip/asr: cpu, cuda, cuda:1 (default: auto)")
    g.add_argument(
        "--asr-engine", help="asr: pocketsphinx (default), whisper, faster-whisper"
    )
    g.add_argument("--asr-model", help="asr: whisper model name or path")
    g.add_argument("--language", help="asr language; subtitles: preferred .LANG.vtt")
    g.add_argument(
        "--option",
        action="append",
        metavar="EXTRACTOR.KEY=VALUE",
        help="any extractor option, e.g. logmel.n_time_bins=96 (repeatable)",
    )


def _extract_options(args: argparse.Namespace) -> dict[str, dict]:
    opts: dict[str, dict] = {}

    def put(ext: str, key: str, value) -> None:
        if value is not None:
            opts.setdefault(ext, {})[key] = value

    for ext in ("pixels", "clip"):
        put(ext, "fps", args.fps)
    put("pixels", "size", args.size)
    put("clip", "model", args.clip_model)
    put("clip", "batch_size", args.batch_size)
    put("clip", "device", args.device)
    put("asr", "device", args.device)
    put("asr", "engine", args.asr_engine)
    put("asr", "model", args.asr_model)
    put("asr", "language", args.language)
    put("subtitles", "language", args.language)
    for item in args.option or []:
        key, eq, raw = item.partition("=")
        ext, dot, name = key.partition(".")
        if not (eq and dot and ext and name):
            raise DensevidError(f"--option {item!r}: expected EXTRACTOR.KEY=VALUE")
        put(ext, name, parse_value(raw))
    return opts


def run_extract(args: argparse.Namespace) -> int:
    from densevid.features.extract import extract_features
    from densevid.features.registry import available_extractors

    if args.list:
        for name, info in available_extractors().items():
            fps = f"{info.default_fps:.3g} fps" if info.default_fps else "timed text"
            print(f"{name:10} {info.kind:7} {fps:10} {info.summary}")
            print(f"{'':10} weights: {info.weights}")
        return 0
    if not args.videos or not args.output:
        raise DensevidError("extract needs VIDEOS and -o FEATURES (or --list)")
    if args.address and args.engine != "ray":
        raise DensevidError("--address is the Ray cluster's: add --engine ray")
    if args.check:
        return _check_extract(args)
    engine = None
    if args.engine == "ray":
        from densevid.features.ray_engine import RayEngine

        engine = RayEngine(address=args.address, workers=args.workers)
    report = extract_features(
        args.videos,
        args.output,
        args.features,
        options=_extract_options(args),
        shard=args.shard,
        workers=args.workers or 1,
        engine=engine,
        retries=args.retries,
        overwrite=args.overwrite,
        webdataset=args.webdataset,
        shard_size=args.shard_size,
        recursive=args.recursive,
        allow_partial=args.allow_partial,
        verbose=not args.quiet,
    )
    print(report.summary(), file=sys.stderr)
    return exit_status(report.n_done, len(report.failed_videos))


def _check_extract(args: argparse.Namespace) -> int:
    """``extract --check``: what is missing on stdout (video, extractor, why; one a
    line, for a script), the counts on stderr."""
    from densevid.features.extract import check_features

    if args.engine != "local" or args.overwrite:
        raise DensevidError("--check reads the cache here: drop --engine/--overwrite")
    report = check_features(
        args.videos,
        args.output,
        args.features,
        options=_extract_options(args),
        shard=args.shard,
        recursive=args.recursive,
        webdataset=args.webdataset,
        shard_size=args.shard_size,
    )
    for vid, name, why in report.failed:
        print(f"{vid}\t{name}\t{why}")
    print(report.summary(), file=sys.stderr)
    return exit_status(report.n_done, len(report.failed_videos))


# --- import ------------------------------------------------------------------------


def add_import(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "import",
        "import the features the field distributes (TSP, C3D, TSN, I3D, VGGish, "
        "MDVC, VidChapters CLIP) into a resumable feature cache, every row at its "
        "true time",
        "densevid import tsp r2plus1d_34-tsp_on_activitynet-valid_features.h5 "
        "-o feats/ --annotations val_1.json\n"
        "  densevid import clip-pth clipvitl14.pth --asr youcook2_asr_align_proc.pkl "
        "-o feats/ --annotations yc2_val.json\n"
        "  densevid import --list",
    )
    p.add_argument("format", nargs="?", help="the source format (see --list)")
    p.add_argument("sources", nargs="*", help="its files or directories")
    p.add_argument("-o", "--output", help="FEATURES directory (written incrementally)")
    p.add_argument(
        "--annotations",
        action="append",
        metavar="FILE",
        help="annotation file (repeatable): the ids to write under (v_ prefix "
        "matched) and each video's duration; needed by c3d and tsn, whose rows "
        "carry no time",
    )
    p.add_argument(
        "--asr",
        metavar="FILE",
        help="clip-pth: VidChapters' ASR pickle, imported as the asr_whisperx stream",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="unpickle arbitrary objects in .pth/.pkl files (runs code the file "
        "names: trusted files only); without it only tensors and plain data load",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="rewrite streams that are complete"
    )
    p.add_argument("--list", action="store_true", help="list the formats and exit")


def run_import(args: argparse.Namespace) -> int:
    from densevid.importers import FORMATS, import_features

    if args.list:
        for fmt in FORMATS.values():
            timing = (
                f"a row per {fmt.stride_s:.3g} s"
                if fmt.stride_s
                else "rows spread over the duration"
            )
            streams = ", ".join([*fmt.streams, fmt.speech_stream]).rstrip(", ")
            print(f"{fmt.name:9} {streams:34} {timing}")
            print(f"{'':9} {fmt.summary}")
        return 0
    if not args.format or not args.sources or not args.output:
        raise DensevidError(
            "import needs FORMAT, SOURCE... and -o FEATURES (or --list)"
        )
    report = import_features(
        args.format,
        args.sources,
        args.output,
        annotations=args.annotations,
        asr=args.asr,
        overwrite=args.overwrite,
        allow_pickle=args.allow_pickle,
        verbose=not args.quiet,
    )
    print(report.summary(), file=sys.stderr)
    return exit_status(report.n_done, len(report.failed_videos))


# --- train -------------------------------------------------------------------------


def add_train(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "train",
        "train the joint model (Vid2Seq-style) on annotations + extracted features; "
        "the same command runs under torchrun for several processes",
        "densevid train --config configs/synthetic.yaml --set max_steps=2000 "
        "--set model.d_model=128\n  torchrun --nproc_per_node 2 -m densevid train "
        "--config configs/synthetic.yaml",
    )
    _add_run_options(p, "densevid.training.TrainConfig")
    p.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="fine-tune from a checkpoint (e.g. densevid pretrain's OUTPUT/last): "
        "architecture, tokenizer and weights come from it",
    )


def run_train(args: argparse.Namespace) -> int:
    from densevid.training import load_config, train

    overrides = _run_overrides(args)
    if args.init:
        overrides.append(f"init={args.init}")
    _print_summary(train(load_config(args.config, overrides), verbose=not args.quiet))
    return 0


# --- predict -----------------------------------------------------------------------


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "predict",
        "predict events for the videos of an annotation file from their features, "
        "and report the references' per-token log-likelihood and perplexity",
        "densevid predict runs/synth/best --features feats/ "
        "--annotations test.json -o preds.json\n"
        "  densevid predict runs/a/best runs/b/best --features feats/ "
        "--annotations test.json -o preds.json   (an ensemble)\n"
        "  densevid predict runs/synth/best --features feats/ "
        "--annotations test.json --segments test.json -o captions.json\n"
        "  densevid predict runs/proposals/last --features feats/ "
        "--annotations test.json --two-stage -o preds.json   (proposals, then "
        "captions)",
    )
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="checkpoint",
        help="checkpoint directory (densevid train writes it); several decode as "
        "one ensemble (their next-token probabilities averaged)",
    )
    p.add_argument("--features", required=True, help="FEATURES directory")
    p.add_argument(
        "--annotations",
        required=True,
        help="ActivityNet-format file giving the videos and their durations",
    )
    p.add_argument("-o", "--output", required=True, help="submission JSON to write")
    p.add_argument(
        "--segments",
        metavar="FILE",
        help="caption these segments instead of finding events (an annotation or "
        "submission file; e.g. the references: the 'ground-truth proposals' "
        "setting); captions are decoded greedily",
    )
    p.add_argument(
        "--select",
        action="store_true",
        help="with several checkpoints: each member captions the ensemble's events "
        "and the caption naming the most predicted concepts (then the largest IDF) "
        "is kept, instead of one caption from the averaged probabilities",
    )
    _add_two_stage_flags(p)
    add_dataclass_flags(p, DecodingOptions, DECODING_HELP)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _add_two_stage_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--two-stage",
        action="store_true",
        help="the two-stage baseline (BMT, MDVC): the model's proposal head "
        "(trained with model.n_proposal_anchors) finds segments (boundaries moved "
        "as --refine-frames says), then the model captions each one (greedy, "
        "after the earlier ones)",
    )
    add_dataclass_flags(p, ProposalOptions, PROPOSAL_HELP)


def _two_stage_options(args: argparse.Namespace) -> ProposalOptions:
    """The proposal flags' options; refused without --two-stage."""
    proposals = dataclass_from_flags(ProposalOptions, args).verify()
    if not args.two_stage and proposals != ProposalOptions():
        raise DensevidError(
            "--min-score, --nms-threshold and --max-proposals choose the proposals "
            "of --two-stage: add --two-stage"
        )
    return proposals


def _check_predict(args: argparse.Namespace) -> ProposalOptions:
    """The proposal options of ``predict``; bad combinations of its flags refused."""
    proposals = _two_stage_options(args)
    if args.two_stage and (args.segments or args.select):
        raise DensevidError(
            "--two-stage captions its own proposals: not with --segments or --select"
        )
    return proposals


def run_predict(args: argparse.Namespace) -> int:

    from densevid.checkpoint import load_models
    from densevid.data import VideoDataset
    from densevid.decoding import decode_dataset
    from densevid.events import load_annotations, save_submission
    from densevid.features.cache import has_features
    from densevid.proposals import check_proposal_model, propose_dataset

    options = dataclass_from_flags(DecodingOptions, args).verify()
    proposal_options = _check_predict(args)
    model = load_models(args.checkpoints, device=args.device)
    if args.two_stage:
        check_proposal_model(model)
    videos = load_annotations(args.annotations)
    cfg = model.config
    streams = list(cfg.visual_streams)
    streams += [cfg.audio_features] if cfg.use_audio else []
    streams += [cfg.speech_features] if cfg.use_speech else []
    missing = {
        (video_id, name)
        for video_id in videos
        for name in streams
        if not has_features(args.features, name, video_id)
    }
    for video_id, name in sorted(missing):
        print(
            f"error: {video_id}: no '{name}' features in {args.features}",
            file=sys.stderr,
        )
    n_missing = len({video_id for video_id, _ in missing})
    videos = {k: v for k, v in videos.items() if k not in {m[0] for m in missing}}
    if not videos:
        print(
            f"error: {args.features}: no video of {args.annotations} has features",
            file=sys.stderr,
        )
        return EXIT_FAILED
    segments = _load_segments(args.segments, videos) if args.segments else None
    dataset = VideoDataset(videos, args.features, cfg, model.time_tokenizer)
    dataset.check_options(cfg)
    if args.two_stage:
        found = propose_dataset(
            model,
            dataset,
            proposal_options,
            batch_size=args.batch_size,
            refine_frames=options.refine_frames,
        )
        segments = {k: [(s, e) for s, e, _ in v] for k, v in found.items()}
    preds, stats = decode_dataset(
        model,
        dataset,
        options,
        batch_size=args.batch_size,
        segments=segments,
        select=args.select,
        verbose=not args.quiet,
    )
    save_submission([preds[k] for k in videos if k in preds], args.output)
    n_events = sum(len(v) for v in preds.values())
    print(
        f"{args.output}: {plural(len(preds), 'video')}, {plural(n_events, 'event')}; "
        f"references: log-likelihood {stats.per_token:.4f}/token, perplexity "
        f"{stats.perplexity:.3f}"
    )
    return exit_status(len(preds), n_missing)


def _load_segments(path: str, videos: dict) -> dict[str, list[tuple[float, float]]]:
    """(start, end) per video from an annotation or a submission file, for the
    videos being predicted; one line if they share none."""
    from densevid.events import load_annotations, load_submission, read_json

    data = read_json(path)
    if isinstance(data, dict) and "results" in data:
        given = load_submission(path, max_per_video=None)
    else:
        given = load_annotations(path)
    out = {k: [(e.start, e.end) for e in v.events] for k, v in given.items()}
    if not set(out) & set(videos):
        raise DensevidError(f"{path}: no segments for any video to predict")
    return out


# --- synth -------------------------------------------------------------------------


def add_synth(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "synth",
        "generate the synthetic dense-captioning benchmark: OUT/videos/*.mp4 and "
        ".vtt narrations, OUT/train.json, val.json, test.json",
        "densevid synth out/world --videos 2000 --workers 2 --stats\n"
        "  densevid synth out/tiny --videos 6 --small\n"
        "  densevid synth out/world --stats          (figures of an existing set)\n"
        "  densevid synth out/world --baselines      (trivial predictions to score)",
    )
    p.add_argument("out", help="output directory")
    p.add_argument(
        "--videos",
        type=int,
        default=None,
        help="videos over all splits (80%% train, 10%% val, 10%% test)",
    )
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    p.add_argument(
        "--preset",
        choices=["small", "default", "long"],
        default="default",
        help="small: 8-16 s videos for tests; default: 20-60 s, what the bundled "
        "model trains on; long: 20 s to 5 min",
    )
    p.add_argument("--small", action="store_true", help="same as --preset small")
    p.add_argument("--workers", type=int, default=1, help="processes in parallel")
    p.add_argument(
        "--split",
        default="0.8,0.1,0.1",
        help="train,val,test fractions of --videos",
    )
    p.add_argument(
        "--speech",
        action="store_true",
        help="speak the narration into the audio with espeak-ng (if installed)",
    )
    p.add_argument(
        "--stats",
        action="store_true",
        help="print event counts, lengths, overlaps and vocabulary per split",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="write trivial predictions for val and test to OUT/baselines/ "
        "(ground truth, one frequent caption over the whole video, random segments "
        "with frequent captions) to score with densevid eval",
    )


def run_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from densevid.events import load_annotations
    from densevid.synth import SPLITS, dataset_stats, format_stats, generate

    if args.videos is None and not (args.stats or args.baselines):
        raise DensevidError(
            "synth: give --videos N (or --stats / --baselines for an existing set)"
        )
    if args.small and args.preset not in ("default", "small"):
        raise DensevidError(f"synth: --small contradicts --preset {args.preset}")
    try:
        fractions = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        fractions = ()
    if len(fractions) != 3:
        raise DensevidError(f"synth: --split needs three fractions, got {args.split}")
    if args.videos is not None:
        splits = generate(
            args.out,
            args.videos,
            seed=args.seed,
            preset="small" if args.small else args.preset,
            workers=args.workers,
            fractions=fractions,
            speech=args.speech,
            verbose=not args.quiet,
        )
        sizes = ", ".join(f"{s} {len(v)}" for s, v in splits.items())
        n_videos = sum(len(v) for v in splits.values())
        print(f"{args.out}: {plural(n_videos, 'video')} ({sizes})")
    else:
        splits = {}
        for split in SPLITS:
            path = Path(args.out) / f"{split}.json"
            if path.exists():
                splits[split] = list(load_annotations(path).values())
        if not splits:
            raise DensevidError(f"{args.out}: no train/val/test.json to summarise")
    if args.stats:
        for split, videos in splits.items():
            if videos:
                print(format_stats(split, dataset_stats(videos)))
    if args.baselines:
        from densevid.events import save_submission
        from densevid.synth.baselines import trivial_baselines

        for split in ("val", "test"):
            if not splits.get(split) or not splits.get("train"):
                continue
            preds = trivial_baselines(splits["train"], splits[split], seed=args.seed)
            for name, videos in preds.items():
                path = Path(args.out) / "baselines" / f"{split}_{name}.json"
                save_submission(videos, path)
                print(f"densevid eval -s {path} -r {Path(args.out) / f'{split}.json'}")
    return 0


# --- pretrain ----------------------------------------------------------------------


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "pretrain",
        "pretrain the joint model on narrated videos, their transcripts as pseudo "
        "events (generative + denoising), from a FEATURES directory or webdataset "
        "shards; fine-tune after with densevid train --init OUTPUT/last",
        "densevid pretrain --config configs/pretrain_synthetic.yaml "
        "--set corpus=data/synth_pre/features/webdataset\n"
        "  torchrun --nproc_per_node 2 -m densevid pretrain --config "
        "configs/pretrain_synthetic.yaml --set num_workers=2",
    )
    _add_run_options(p, "densevid.training.PretrainConfig")


def run_pretrain(args: argparse.Namespace) -> int:
    from densevid.training import load_pretrain_config, pretrain

    config = load_pretrain_config(args.config, _run_overrides(args))
    _print_summary(pretrain(config, verbose=not args.quiet))
    return 0


# --- eval --------------------------------------------------------------------------


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "eval",
        "score predictions with the field's metrics, numerically identical to the "
        "official ActivityNet evaluation (densevid_eval) and SODA",
        "densevid eval -s preds.json -r val_1.json val_2.json --json scores.json\n"
        "  densevid eval --paragraph -s preds.json -r val_1_para.json val_2_para.json",
    )
    p.add_argument("-s", "--submission", required=True, help="predictions (JSON)")
    p.add_argument(
        "-r", "--references", nargs="+", required=True, help="reference JSON files"
    )
    p.add_argument(
        "--tious",
        nargs="+",
        type=float,
        default=[0.3, 0.5, 0.7, 0.9],
        help="tIoU thresholds",
    )
    p.add_argument(
        "--max-proposals",
        type=int,
        default=1000,
        help="predictions kept per video, in file order",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        help="only these metrics (e.g. METEOR CIDEr SODA_c; default: all)",
    )
    p.add_argument(
        "--garbage",
        choices=["random", "2018"],
        default="random",
        help="what unmatched predictions are compared with: the official random "
        "string (since 2019) or 2018's 'abc123!@#'",
    )
    p.add_argument("--no-soda", action="store_true", help="skip SODA_c")
    p.add_argument(
        "--paragraph",
        action="store_true",
        help="paragraph evaluation instead: each video's captions joined in time "
        "order, scored against the reference paragraphs (*_para.json files or "
        "annotation files) with BLEU, METEOR, ROUGE-L and CIDEr",
    )
    p.add_argument(
        "--backend",
        choices=["python", "java"],
        help="METEOR 1.5 and the PTB tokenizer re-implemented in Python (default, "
        "no Java), or pycocoevalcap's jars (needs Java; to cross-check)",
    )
    p.add_argument(
        "--soda-references",
        choices=["separate", "merged", "best"],
        default="separate",
        help="SODA_c with several reference files: each alone then averaged "
        "(PDVC), merged per video (SODA's CLI) or the best per video (SODA -mr)",
    )
    p.add_argument(
        "--f1",
        choices=["tiou", "average", "video"],
        default="tiou",
        help="F1 definition: per tIoU from mean P and R (VidChapters), of the "
        "averaged P and R, or mean of per-video F1 (Vid2Seq/scenic)",
    )
    missing = p.add_mutually_exclusive_group()
    missing.add_argument(
        "--skip-missing",
        dest="skip_missing",
        action="store_const",
        const=True,
        help="average only over reference videos with predictions (VidChapters); "
        "default: as each official tool (densevid_eval counts them as 0, SODA "
        "skips them)",
    )
    missing.add_argument(
        "--count-missing",
        dest="skip_missing",
        action="store_const",
        const=False,
        help="count reference videos without predictions as 0 in every metric",
    )
    p.add_argument("--workers", type=int, help="METEOR processes (default: auto)")
    p.add_argument(
        "--json", metavar="OUT", help="also write the scores as JSON ('-': stdout only)"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse a submission with any oddity instead of scoring it as the "
        "official scorer does with one warning per kind: negative, reversed or "
        "zero-length times, empty sentences, duplicate events, scores that are not "
        "numbers, another file shape or field names, unknown, ambiguous or loosely "
        "matched video ids, events past the video's end (densevid check --strict "
        "-r refuses the same)",
    )


def run_eval(args: argparse.Namespace) -> int:
    import json
    import time

    from densevid.events import write_json_atomic
    from densevid.metrics import evaluate_files, format_scores

    t0 = time.perf_counter()
    if args.paragraph:
        scores = _paragraph_scores(args)
    else:
        scores = evaluate_files(
            args.submission,
            args.references,
            tious=args.tious,
            max_proposals=args.max_proposals,
            metrics=args.metrics,
            garbage=args.garbage,
            soda=not args.no_soda,
            soda_references=args.soda_references,
            f1=args.f1,
            skip_missing=args.skip_missing,
            n_workers=args.workers,
            backend=args.backend,
            strict=args.strict,
            verbose=not args.quiet,
        )
    if args.json == "-":
        print(json.dumps(scores, indent=1))
        return 0
    if args.json:
        write_json_atomic(scores, args.json, indent=1)
    refs = " + ".join(args.references)
    print(f"{args.submission} vs {refs} ({time.perf_counter() - t0:.1f} s)")
    print(format_scores(scores, [] if args.paragraph else args.tious))
    return 0


def _paragraph_scores(args: argparse.Namespace) -> dict[str, float]:
    from densevid.events import load_submission
    from densevid.metrics.paragraph import (
        evaluate_paragraphs,
        load_paragraph_references,
    )

    refs = [load_paragraph_references(r) for r in args.references]
    preds = load_submission(args.submission, max_per_video=None, strict=args.strict)
    return evaluate_paragraphs(
        preds,
        refs,
        metrics=args.metrics,
        backend=args.backend,
        strict=args.strict,
        source=args.submission,
    )


# --- caption -----------------------------------------------------------------------


def add_caption(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "caption",
        "find and describe the events of video files: writes OUT/<video>.json "
        "(submission), .srt, .vtt and .html (a report with the video and a timeline)",
        "densevid caption examples/sample.mp4\n"
        "  densevid caption talk.mp4 videos/ --model runs/synthetic/best -o out/",
    )
    p.add_argument("videos", nargs="+", help="video files or directories of videos")
    _add_recursive_option(p)
    _add_partial_option(p)
    p.add_argument(
        "--features",
        metavar="DIR",
        help="a FEATURES directory with streams precomputed for these videos (by "
        "file name), read instead of extracted: needed for features densevid "
        "cannot compute (tsp, c3d, i3d...: densevid import writes them)",
    )
    p.add_argument(
        "--model",
        action="append",
        help="'default' (the bundled model, which knows only the synthetic world), "
        "a checkpoint directory written by 'densevid train', or a hub repo id; "
        "given several times, the models decode as one ensemble",
    )
    p.add_argument("-o", "--output-dir", default=".", help="where the files go")
    p.add_argument(
        "--format",
        default="json,srt,vtt,html",
        help="comma-separated: json, srt, vtt, txt (YouTube chapters), html, or all",
    )
    add_dataclass_flags(p, DecodingOptions, DECODING_HELP)
    p.add_argument("--max-events", type=int, help="keep the best-scored N events")
    p.add_argument(
        "--min-length", type=float, default=0.0, help="drop shorter events (s)"
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        help="drop events whose mean token log-probability is lower",
    )
    p.add_argument(
        "--window",
        type=float,
        help="seconds the model sees per pass (default: the longest training "
        "video; 0: the whole video at once)",
    )
    _add_two_stage_flags(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def run_caption(args: argparse.Namespace) -> int:

    from densevid.caption import CaptionOptions, caption_many
    from densevid.checkpoint import load_models
    from densevid.files import find_videos

    proposals = _two_stage_options(args)
    options = CaptionOptions(
        decoding=dataclass_from_flags(DecodingOptions, args),
        window=args.window,
        max_events=args.max_events,
        min_length=args.min_length,
        score_threshold=args.score_threshold,
        allow_partial=args.allow_partial,
        proposals=proposals if args.two_stage else None,
    ).verify()
    missing: dict[str, str] = {}
    videos = find_videos(args.videos, recursive=args.recursive, problems=missing)
    for path, problem in missing.items():
        print(f"error: {path}: {problem}", file=sys.stderr)
    if not videos:
        if not missing:
            print("error: no video to caption", file=sys.stderr)
        return EXIT_USAGE
    model = load_models(args.model or ["default"], device=args.device)
    if args.two_stage:
        from densevid.proposals import check_proposal_model

        check_proposal_model(model)
    done, failed, timings = caption_many(
        model,
        videos,
        args.output_dir,
        options=options,
        formats=args.format,
        verbose=not args.quiet,
        features_dir=args.features,
    )
    for problem in failed.values():
        print(f"error: {problem}", file=sys.stderr)
    n_events = sum(len(v) for v in done.values())
    speed = ""
    if timings.n_videos:
        total = timings.decode_and_features + timings.generation
        speed = (
            f"; {timings.video_seconds / max(total, 1e-9):.1f}x real time "
            f"(decode+features {timings.decode_and_features:.1f} s, "
            f"generation {timings.generation:.1f} s)"
        )
    print(
        f"captioned {plural(len(done), 'video')} ({plural(n_events, 'event')}) into "
        f"{args.output_dir}, {len(failed) + len(missing)} failed{speed}"
    )
    return exit_status(len(done), len(failed) + len(missing))


# --- train-matcher, index, search --------------------------------------------------


def add_train_matcher(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "train-matcher",
        "train the matching model of densevid search: an event's frames against its "
        "caption, contrastive (a joint video-text embedding)",
        "densevid train-matcher --config configs/matcher_synthetic.yaml "
        "--set seed=1\n  densevid train-matcher --config "
        "configs/matcher_synthetic.yaml --set narration=subtitles",
    )
    _add_run_options(p, "densevid.training.matcher.MatcherTrainConfig")


def run_train_matcher(args: argparse.Namespace) -> int:
    from densevid.training.matcher import load_matcher_config, train_matcher

    cfg = load_matcher_config(args.config, _run_overrides(args))
    _print_summary(train_matcher(cfg, verbose=not args.quiet))
    return 0


def add_index(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "index",
        "build a search index of events (video, start, end, caption and the "
        "matcher's embedding of the event's frames) from predictions or videos",
        "densevid index preds.json --features feats/ --matcher runs/matcher/best "
        "-o index/\n  densevid index videos/ --model default --features feats/ "
        "--matcher runs/matcher/best -o index/   (captions the videos first)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="VIDEOS_OR_PREDICTIONS",
        help="prediction files (.json: densevid predict's or caption's output, or "
        "annotations), or video files and directories to caption and index",
    )
    p.add_argument("-o", "--output", required=True, help="the index directory")
    p.add_argument(
        "--matcher",
        required=True,
        help="matching model (densevid train-matcher's OUTPUT/best)",
    )
    p.add_argument(
        "--features",
        required=True,
        help="FEATURES directory with the matcher's stream (for videos: where it "
        "is extracted, skipping what is there)",
    )
    p.add_argument(
        "--model",
        action="append",
        help="with videos: the captioning model (default: the bundled one)",
    )
    p.add_argument(
        "--vector-index",
        choices=["auto", "flat", "ivf"],
        default="auto",
        help="exact inner product (flat), an inverted file (ivf: approximate, for "
        "millions of events), or flat up to 200,000 events",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an index")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _quiet_faiss() -> None:
    """faiss logs which of its builds it loads at INFO: not the user's business."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def run_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    _quiet_faiss()

    from densevid.matcher import load_matcher
    from densevid.search import build_index, index_videos, read_videos_events

    jsons = [p for p in args.inputs if p.lower().endswith(".json")]
    videos = [p for p in args.inputs if not p.lower().endswith(".json")]
    if jsons and videos:
        raise DensevidError("index takes prediction files or videos, not both")
    if jsons and args.model:
        raise DensevidError("--model captions videos: not with prediction files")
    if Path(args.output).exists() and not args.overwrite:
        raise DensevidError(f"{args.output}: exists; give --overwrite to replace it")
    matcher = load_matcher(args.matcher, device=args.device)
    failed = 0
    if jsons:
        manifest = build_index(
            matcher,
            read_videos_events(jsons),
            args.features,
            args.output,
            vector_index=args.vector_index,
            overwrite=args.overwrite,
        )
    else:
        from densevid.checkpoint import load_models

        captioner = load_models(args.model or ["default"], device=args.device)
        manifest, problems = index_videos(
            captioner,
            matcher,
            videos,
            args.features,
            args.output,
            vector_index=args.vector_index,
            overwrite=args.overwrite,
            verbose=not args.quiet,
        )
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        failed = len(problems)
    print(
        f"{args.output}: {plural(manifest['n_events'], 'event')} of "
        f"{plural(manifest['n_videos'], 'video')} ({manifest['vector_index']} "
        "vector index)"
    )
    return exit_status(manifest["n_videos"], failed)


def add_search(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "search",
        "find the events of an index that best match a sentence: video, start, end, "
        "score and caption, best first",
        'densevid search index/ "when does the red circle bounce" -k 5\n'
        '  densevid search index/ "the square is getting huge" --text-weight 0 '
        "--json",
    )
    p.add_argument("index", help="an index directory (densevid index)")
    p.add_argument("query", help="what to look for, in words")
    p.add_argument("-k", type=int, default=10, help="events to return")
    p.add_argument(
        "--text-weight",
        type=float,
        default=0.5,
        help="weight of the captions' BM25 match against the embedding's "
        "(1: caption words only, 0: the joint embedding only)",
    )
    p.add_argument(
        "--n-candidates",
        type=int,
        default=100,
        help="events taken from each ranking before they are combined",
    )
    p.add_argument(
        "--nprobe", type=int, default=32, help="lists searched in an ivf index"
    )
    p.add_argument("--json", action="store_true", help="JSON lines, one per event")


def run_search(args: argparse.Namespace) -> int:
    import json

    from densevid.search import SearchOptions, open_index

    _quiet_faiss()

    options = SearchOptions(
        k=args.k,
        text_weight=args.text_weight,
        n_candidates=args.n_candidates,
        nprobe=args.nprobe,
    ).verify()
    with open_index(args.index) as index:
        hits = index.search(args.query, options)
    for hit in hits:
        if args.json:
            print(json.dumps(hit.to_dict()))
        else:
            print(
                f"{hit.score:.3f}  {hit.video_id}  {hit.start:.2f}-{hit.end:.2f}  "
                f"{hit.caption}"
            )
    if not hits:
        print("no event found", file=sys.stderr)
    return 0


# --- main --------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "check": (add_check, run_check),
    "eval": (add_eval, run_eval),
    "train": (add_train, run_train),
    "predict": (add_predict, run_predict),
    "extract": (add_extract, run_extract),
    "import": (add_import, run_import),
    "synth": (add_synth, run_synth),
    "pretrain": (add_pretrain, run_pretrain),
    "caption": (add_caption, run_caption),
    "train-matcher": (add_train_matcher, run_train_matcher),
    "index": (add_index, run_index),
    "search": (add_search, run_search),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="densevid",
        description="Dense video captioning: find every event in a video and "
        "describe it.",
        formatter_class=_HelpFormatter,
        epilog="run 'densevid COMMAND --help' for a command's options and an example",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised where the process is so that it unwinds as for Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def _os_error_line(e: OSError) -> str:
    """``[Errno 13] Permission denied: 'x'`` -> ``x: permission denied``."""
    what = e.strerror or type(e).__name__
    where = e.filename if e.filename is not None else ""
    return f"{where}: {what[:1].lower()}{what[1:]}" if where else what


def report_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    """Prints the run's warnings as densevid's own lines, once each: the same
    problem met by several videos (``VIDEO: problem``) is one line that counts
    them, not one line per video with a source line."""
    by_problem: dict[str, list[str]] = {}
    for w in caught:
        text = " ".join(str(w.message).split())
        subject, sep, problem = text.partition(": ")
        if not sep or " " in subject:
            subject, problem = "", text
        by_problem.setdefault(problem, []).append(subject)
    for problem, subjects in by_problem.items():
        named = sorted({s for s in subjects if s})
        if len(named) <= 1:
            prefix = f"{named[0]}: " if named else ""
            print(f"warning: {prefix}{problem}", file=sys.stderr)
            continue
        shown = ", ".join(named[:MAX_NAMED]) + (
            ", ..." if len(named) > MAX_NAMED else ""
        )
        print(
            f"warning: {problem} ({plural(len(named), 'input')}: {shown})",
            file=sys.stderr,
        )


MAX_NAMED = 5  # inputs a gathered warning names before "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit status (see ``EXIT_*``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    )
    logging.basicConfig(level=level, format="%(message)s")
    _, run = COMMANDS[args.command]
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)  # libraries' notes to developers
        try:
            return run(args)
        except DensevidError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as e:  # a path the user gave: unreadable, unwritable, missing
            print(f"error: {_os_error_line(e)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_SIGINT
        except Terminated:
            print("terminated", file=sys.stderr)
            return EXIT_SIGTERM
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
            report_warnings(caught)
