"""PTB tokenisation exactly as the official evaluation does it, each sentence once.

The official script (ranjaykrishna/densevid_eval, through coco-caption's
``PTBTokenizer``) replaces non-ASCII characters by spaces, runs Stanford CoreNLP 3.4.1's
``PTBTokenizer -preserveLines -lowerCase`` over one sentence per line and drops the
punctuation tokens listed below. It starts that JVM twice per scorer per tIoU; here
every distinct sentence goes through one JVM once and the result is cached.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from densevid.errors import DensevidError

logger = logging.getLogger(__name__)

# coco-caption's list; note that "-LRB-" etc. survive because -lowerCase turns
# them into "-lrb-" first, which the official evaluation keeps as tokens too.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-"]
    + [".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
# Characters the Java tokenizer treats as line ends (after non-ASCII removal). The
# official script only replaces "\n", so a caption with "\r", "\v" or "\f" shifts
# every later sentence; here they become spaces.
LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\x0b\x0c"})
PTB_CLASS = "edu.stanford.nlp.process.PTBTokenizer"
# Short-lived JVM: the client compiler and serial GC start faster, same output.
JVM_FAST_START = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx128m"]
TOKENIZER_CHUNK = 50_000  # sentences per JVM run (64 MiB of heap handle 47k)
# UTF-8 text whatever the locale (the tokenizer emits U+00A0 in "7 1/2"); an English
# locale so that METEOR parses its own "0.5" statistics back (not "0,5").
JVM_TEXT = ["-Dfile.encoding=UTF-8", "-Duser.language=en", "-Duser.country=US"]
TOKENIZER_TIMEOUT_S = 600


def java_executable() -> str:
    """The ``java`` to run (``$DENSEVID_JAVA`` or the one on PATH).

    Raises:
        DensevidError: no Java runtime, with the fix in one line.
    """
    java = os.environ.get("DENSEVID_JAVA") or shutil.which("java")
    if not java or not Path(java).exists():
        raise DensevidError(
            "Java not found: METEOR 1.5 and the PTB tokenizer of the official "
            "evaluation run on Java; install a Java runtime (e.g. apt-get install "
            "default-jre-headless) or set DENSEVID_JAVA to the java binary"
        )
    return java


def coco_jar(subdir: str, name: str) -> Path:
    """A jar shipped by pycocoevalcap (``tokenizer/`` or ``meteor/``)."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise DensevidError("pycocoevalcap is missing: pip install pycocoevalcap==1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / subdir / name
    if not path.exists():
        raise DensevidError(f"{path}: missing from the pycocoevalcap installation")
    return path


def clean_text(text: str) -> str:
    """Non-ASCII characters to spaces (as the official ``remove_nonascii``) and line
    breaks to spaces, so that one sentence stays one line for the tokenizer."""
    if not text.isascii():
        text = "".join(c if ord(c) < 128 else " " for c in text)
    return text.translate(LINE_BREAKS)


def strip_punctuation(line: str) -> str:
    """One tokenizer output line -> the official token string."""
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


class CachedTokenizer:
    """Sentences in, official token strings out, each distinct sentence tokenised
    once, in batches of ``TOKENIZER_CHUNK`` in first-seen order (the order decides
    the few line ends that depend on the next line); ``_run`` tokenises a batch."""

    def __init__(self) -> None:
        self.cache: dict[str, str] = {}

    def __call__(self, sentences: Iterable[str]) -> dict[str, str]:
        """Raw sentence -> token string, for every distinct sentence given."""
        wanted = dict.fromkeys(sentences)
        todo = [s for s in wanted if s not in self.cache]
        for i in range(0, len(todo), TOKENIZER_CHUNK):
            chunk = todo[i : i + TOKENIZER_CHUNK]
            self.cache.update(zip(chunk, self._run(chunk), strict=True))
        return {s: self.cache[s] for s in wanted}

    def _run(self, sentences: list[str]) -> list[str]:
        raise NotImplementedError


class PTBTokenizer(CachedTokenizer):
    """Tokenises sentences with Stanford's PTBTokenizer (the jar), caching every
    result.

    Args:
        java: the java binary (default: ``java_executable()``).
    """

    def __init__(self, java: str | None = None) -> None:
        super().__init__()
        self.java = java or java_executable()
        self.jar = coco_jar("tokenizer", "stanford-corenlp-3.4.1.jar")

    def _run(self, sentences: list[str]) -> list[str]:
        lines = [clean_text(s) for s in sentences]
        with tempfile.TemporaryDirectory(prefix="densevid-ptb-") as tmp:
            path = Path(tmp) / "sentences.txt"
            path.write_text("\n".join(lines) + "\n", encoding="ascii")
            cmd = [
                self.java,
                *JVM_FAST_START,
                *JVM_TEXT,
                "-cp",
                str(self.jar),
                PTB_CLASS,
            ]
            cmd += ["-preserveLines", "-lowerCase", str(path)]
            try:
                proc = subprocess.run(
                    cmd,
                    capture_output=True,
                    timeout=TOKENIZER_TIMEOUT_S,
                    check=False,
                )
            except OSError as e:
                raise DensevidError(f"cannot run the PTB tokenizer ({e})") from e
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise DensevidError(
                f"the PTB tokenizer (java) failed with status {proc.returncode}: "
                + " | ".join(tail)
            )
        out = proc.stdout.decode("utf-8", errors="replace").split("\n")
        if len(out) < len(lines) or any(out[len(lines) :]):
            raise DensevidError(
                f"the PTB tokenizer returned {len(out)} lines for {len(lines)} "
                "sentences; a sentence contains a character it splits lines at"
            )
        logger.debug("tokenised %d sentences", len(lines))
        return [strip_punctuation(line) for line in out[: len(lines)]]
