"""The ``densevid`` command: one argparse subcommand per public function.

Each subcommand is a pair ``add_<name>(subparsers)`` / ``run_<name>(args) -> int`` and
is listed in ``COMMANDS``. Library errors (``DensevidError``) become one line on stderr
and exit status 2; nothing else here knows about the library's internals.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from densevid.errors import DensevidError

logger = logging.getLogger("densevid")


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


# --- check -------------------------------------------------------------------------


def add_check(sub: argparse._SubParsersAction) -> None:
    p = _subparser(
        sub,
        "check",
        "validate annotation or submission files and summarise them",
        "densevid check val_1.json preds.json",
    )
    p.add_argument("files", nargs="+", help="annotation or submission JSON files")
    p.add_argument(
        "--strict",
        action="store_true",
        help="treat reversed segments and ends past the duration as errors",
    )


def run_check(args: argparse.Namespace) -> int:
    from densevid.events import load_annotations, load_submission, read_json

    failed = 0
    for path in args.files:
        try:
            data = read_json(path)
            is_submission = isinstance(data, dict) and (
                "results" in data
                or (data and all(isinstance(v, list) for v in data.values()))
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if is_submission:
                    videos = load_submission(path)
                    kind = "submission"
                else:
                    videos = load_annotations(path, strict=args.strict)
                    kind = "annotations"
            n_events = sum(len(v) for v in videos.values())
            print(f"{path}: {kind}, {len(videos)} videos, {n_events} events")
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
        "  densevid extract --list",
    )
    p.add_argument("videos", nargs="*", help="video files and/or directories")
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
    p.add_argument("--workers", type=int, default=1, help="parallel processes")
    p.add_argument(
        "--overwrite", action="store_true", help="redo outputs that are complete"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if any video failed")
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
        default=[],
        metavar="EXTRACTOR.KEY=VALUE",
        help="any extractor option, e.g. logmel.n_time_bins=96 (repeatable)",
    )


def _extract_options(args: argparse.Namespace) -> dict[str, dict]:
    import json

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
    for item in args.option:
        key, eq, raw = item.partition("=")
        ext, dot, name = key.partition(".")
        if not (eq and dot and ext and name):
            raise DensevidError(f"--option {item!r}: expected EXTRACTOR.KEY=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        put(ext, name, value)
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
    report = extract_features(
        args.videos,
        args.output,
        args.features,
        options=_extract_options(args),
        shard=args.shard,
        workers=args.workers,
        overwrite=args.overwrite,
        webdataset=args.webdataset,
        shard_size=args.shard_size,
        verbose=not args.quiet,
    )
    print(report.summary(), file=sys.stderr)
    return 1 if (args.strict and report.failed) else 0


# --- main --------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "check": (add_check, run_check),
    "extract": (add_extract, run_extract),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="densevid",
        description="Dense video captioning: find every event in a video and "
        "describe it.",
        formatter_class=_HelpFormatter,
        epilog="run 'densevid COMMAND --help' for a command's options and an example",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    )
    logging.basicConfig(level=level, format="%(message)s")
    _, run = COMMANDS[args.command]
    try:
        return run(args)
    except DensevidError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
