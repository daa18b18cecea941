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


# --- main --------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "check": (add_check, run_check),
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
