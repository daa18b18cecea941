"""The English resources of METEOR 1.5, read from pycocoevalcap's files once and
cached in a compact form.

Sources (all from the pycocoevalcap installation, nothing downloaded):

- ``meteor-1.5.jar`` (read with ``zipfile``): the function words
  (``function/english.words``), the non-breaking prefixes of the normaliser
  (``nonbreaking/english.prefixes``) and the WordNet synonym files
  (``synonym/english.synsets``, ``synonym/english.exceptions``).
- ``data/paraphrase-en.gz``: 5.3 million (phrase, paraphrase) entries in triples of
  lines (a probability METEOR ignores, the phrase, the paraphrase).

The first use converts them into a directory of ``.npy`` arrays and one small JSON
file under the user's cache directory (``$DENSEVID_CACHE`` or ``~/.cache/densevid``),
named after the source files' sizes and modification times, so that a later process
memory-maps the arrays instead of parsing the 61 MB table (first use: ~15 s of
CPU and ~1.1 GiB of memory at peak; later loads: ~0.15 s, 164 MB of files). The
directory is built under a temporary name and renamed into place, so concurrent
first uses are safe; conversions of older sources are removed.

Paraphrase table layout (word ids index the table vocabulary, in order of first
appearance):

- ``phrase_keys`` (uint64, sorted): a hash of each distinct phrase's word ids;
  ``phrase_words``/``phrase_offsets``: that phrase's word ids (to verify a hit);
  ``phrase_entries``: its entries are ``entries[phrase_entries[p]:phrase_entries[p+1]]``
  (in file order, which is the order METEOR tries them).
- ``par_words``/``par_offsets``: each entry's paraphrase as word ids;
  ``par_keys``: the same hash of them (to keep only paraphrases that can occur in a
  batch of sentences).

The stemmer is the Snowball English stemmer of the jar; PyStemmer 2.2.0.3 (pinned)
stems every word of the synonym files, the paraphrase table and the shared caption
data exactly as the jar's ``englishStemmer`` does (PyStemmer 3.x and snowballstemmer
3.x do not: "added" -> "ad", "-ologist" words and others differ).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from densevid.errors import DensevidError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
BUILD_CHUNK = 500_000  # paraphrase-table entries converted at a time
MAX_PHRASE = 7  # longest phrase in paraphrase-en.gz (checked at build time)
HASH_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the phrase hash
NBP_ANY = 1
NBP_NUM_ONLY = 2
ARRAYS = (
    "vocab_blob",
    "phrase_keys",
    "phrase_words",
    "phrase_offsets",
    "phrase_entries",
    "par_words",
    "par_offsets",
    "par_keys",
)


def meteor_files() -> tuple[Path, Path]:
    """(meteor-1.5.jar, paraphrase-en.gz) of the pycocoevalcap installation."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise DensevidError("pycocoevalcap is missing: pip install pycocoevalcap==1.2")
    root = Path(list(spec.submodule_search_locations)[0]) / "meteor"
    jar, para = root / "meteor-1.5.jar", root / "data" / "paraphrase-en.gz"
    for p in (jar, para):
        if not p.exists():
            raise DensevidError(f"{p}: missing from the pycocoevalcap installation")
    return jar, para


def cache_root() -> Path:
    """``$DENSEVID_CACHE`` or ``~/.cache/densevid``."""
    env = os.environ.get("DENSEVID_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "densevid"


def source_key(files: tuple[Path, ...]) -> str:
    """A short name that changes when any source file (size, mtime) changes."""
    h = hashlib.sha256(f"v{FORMAT_VERSION}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def phrase_hash(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hash of the word-id runs ``ids[s:s+l]`` (vectorised over the runs)."""
    keys = np.zeros(len(starts), dtype=np.uint64)
    for k in range(int(lengths.max()) if len(lengths) else 0):
        live = lengths > k
        w = ids[starts[live] + k].astype(np.uint64) + np.uint64(1)
        keys[live] = keys[live] * HASH_MUL + w
    return keys


def _split_lines(text: str) -> list[str]:
    # The table holds no "\r" (checked at build time), so "\n" is every line end.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _tokens_and_lengths(lines: list[str]) -> tuple[list[str], np.ndarray]:
    """Words of lines split on single spaces (the table has no other whitespace),
    and the number of words per line."""
    lengths = np.fromiter((line.count(" ") + 1 for line in lines), np.int64, len(lines))
    return " ".join(lines).split(" "), lengths


def _build_paraphrases(para: Path, out: Path) -> None:
    # Streamed in chunks of triples (a few hundred MB at most); word ids in order
    # of first appearance.
    vocab: dict[str, int] = {}
    ref_ids, par_ids, ref_len, par_len, first = [], [], [], [], []
    seen_phrases: set[str] = set()
    previous = None
    n_entries = 0
    with gzip.open(para, "rt", encoding="utf-8", newline="\n") as f:
        while True:
            lines = list(itertools.islice(f, 3 * BUILD_CHUNK))
            if not lines:
                break
            if len(lines) % 3 or not lines[-1].endswith("\n"):
                raise DensevidError(f"{para}: not triples of lines")
            refs = [line[:-1] for line in lines[1::3]]
            pars = [line[:-1] for line in lines[2::3]]
            del lines
            for text in (refs, pars):
                joined = "\n".join(text)
                for bad in ("\r", "\t", "\x0b", "\x0c", "  "):
                    if bad in joined:
                        raise DensevidError(
                            f"{para}: unexpected {bad!r} in the paraphrase table"
                        )
            for k, ref in enumerate(refs):
                if ref != previous:
                    if ref in seen_phrases:
                        raise DensevidError(
                            f"{para}: entries of one phrase are not consecutive"
                        )
                    seen_phrases.add(ref)
                    first.append(n_entries + k)
                    previous = ref
            n_entries += len(refs)
            for lines, ids, lens in (
                (refs, ref_ids, ref_len),
                (pars, par_ids, par_len),
            ):
                tokens, lengths = _tokens_and_lengths(lines)
                if "" in tokens:
                    raise DensevidError(f"{para}: empty word in the paraphrase table")
                if lengths.max() > MAX_PHRASE:
                    raise DensevidError(
                        f"{para}: phrases longer than {MAX_PHRASE} words"
                    )
                get = vocab.setdefault
                ids.append(
                    np.fromiter(
                        (get(t, len(vocab)) for t in tokens), np.int32, len(tokens)
                    )
                )
                lens.append(lengths)
    del seen_phrases
    words = list(vocab)
    del vocab
    ref_ids_a = np.concatenate(ref_ids)
    par_ids_a = np.concatenate(par_ids)
    ref_len_a = np.concatenate(ref_len)
    par_len_a = np.concatenate(par_len)
    ref_off = np.zeros(len(ref_len_a) + 1, np.int64)
    np.cumsum(ref_len_a, out=ref_off[1:])
    par_off = np.zeros(len(par_len_a) + 1, np.int64)
    np.cumsum(par_len_a, out=par_off[1:])
    # Entries of one phrase are consecutive in the file; METEOR's transducer keeps
    # them in file order under the phrase, which is all the order that matters.
    first_a = np.asarray(first, np.int64)
    entries = np.append(first_a, n_entries)
    p_keys = phrase_hash(ref_ids_a, ref_off[first_a], ref_len_a[first_a])
    order = np.argsort(p_keys, kind="stable")
    if len(np.unique(p_keys)) != len(p_keys):
        raise DensevidError(f"{para}: phrase hash collision; change HASH_MUL")
    sel = first_a[order]
    p_words = ref_ids_a[
        np.repeat(
            ref_off[sel] - (np.cumsum(ref_len_a[sel]) - ref_len_a[sel]), ref_len_a[sel]
        )
        + np.arange(int(ref_len_a[sel].sum()))
    ]
    p_off = np.zeros(len(first_a) + 1, np.int64)
    np.cumsum(ref_len_a[sel], out=p_off[1:])
    p_entries = np.stack([entries[:-1][order], entries[1:][order]], axis=1)
    arrays = {
        "vocab_blob": np.frombuffer("\n".join(words).encode("utf-8"), np.uint8),
        "phrase_keys": p_keys[order],
        "phrase_words": p_words.astype(np.int32),
        "phrase_offsets": p_off,
        "phrase_entries": p_entries.astype(np.int64),
        "par_words": par_ids_a,
        "par_offsets": par_off,
        "par_keys": phrase_hash(par_ids_a, par_off[:-1], par_len_a),
    }
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", arr)


def _build_lexicon(jar: Path, out: Path) -> None:
    with zipfile.ZipFile(jar) as z:
        function = z.read("function/english.words").decode("utf-8")
        prefixes = z.read("nonbreaking/english.prefixes").decode("utf-8")
        synsets = z.read("synonym/english.synsets").decode("utf-8")
        exceptions = z.read("synonym/english.exceptions").decode("utf-8")

    # Java's readLine ends lines at "\n", "\r" or "\r\n".
    def java_lines(text: str) -> list[str]:
        return _split_lines(text.replace("\r\n", "\n").replace("\r", "\n"))

    nbp: dict[str, int] = {}
    for line in java_lines(prefixes):
        tok = java_tokens(line)
        if not tok or tok[0].startswith("#"):
            continue
        kind = NBP_NUM_ONLY if len(tok) > 1 and tok[1] == "#NUMERIC_ONLY#" else NBP_ANY
        nbp[tok[0]] = kind
    syn: dict[str, list[int]] = {}
    lines = java_lines(synsets)
    for word, sets in zip(lines[0::2], lines[1::2], strict=True):
        syn[word] = sorted({int(s) for s in java_tokens(sets)})
    exc: dict[str, list[str]] = {}
    lines = java_lines(exceptions)
    for base, forms in zip(lines[0::2], lines[1::2], strict=True):
        for form in java_tokens(forms):
            exc.setdefault(form, []).append(base)
    lexicon = {
        "function": java_lines(function),
        "nbp": nbp,
        "synsets": syn,
        "exceptions": exc,
    }
    (out / "lexicon.json").write_text(json.dumps(lexicon), encoding="utf-8")


_JAVA_DELIMS = " \t\n\r\f"


def java_tokens(text: str) -> list[str]:
    """``java.util.StringTokenizer``'s tokens (delimiters space, tab, newline,
    carriage return, form feed only)."""
    if "\t" in text or "\n" in text or "\r" in text or "\f" in text:
        for d in "\t\n\r\f":
            text = text.replace(d, " ")
    return [t for t in text.split(" ") if t]


def build_cache(target: Path, jar: Path, para: Path) -> None:
    """Converts the sources into ``target`` (atomically: a temporary directory
    renamed into place; a concurrent builder's result is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        t0 = time.perf_counter()
        _build_lexicon(jar, tmp)
        _build_paraphrases(para, tmp)
        (tmp / "DONE").write_text(f"{time.perf_counter() - t0:.1f} s\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "DONE").exists():
                raise
        logger.info(
            "METEOR resources cached in %s (%.1f s)", target, time.perf_counter() - t0
        )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(current: Path) -> None:
    """Drops conversions of older sources or formats beside ``current`` (a process
    still mapping one keeps its files until it exits)."""
    for d in current.parent.glob("meteor-1.5-*"):
        if d != current and (d / "DONE").exists():
            shutil.rmtree(d, ignore_errors=True)


class Resources:
    """METEOR's English resources, built on first use and memory-mapped after.

    Attributes load lazily: constructing one reads nothing.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache_dir = cache_dir
        self._lock = threading.RLock()
        self._dir: Path | None = None
        self._lexicon: dict | None = None
        self._arrays: dict[str, np.ndarray] | None = None
        self._vocab: dict[str, int] | None = None
        self._stemmer = None
        self.build_seconds = 0.0
        self.load_seconds = 0.0

    def directory(self) -> Path:
        with self._lock:
            if self._dir is None:
                jar, para = meteor_files()
                root = self._cache_dir or cache_root()
                target = root / "meteor" / f"meteor-1.5-{source_key((jar, para))}"
                if not (target / "DONE").exists():
                    t0 = time.perf_counter()
                    logger.info("METEOR: converting %s once (~15 s)", para.name)
                    build_cache(target, jar, para)
                    self.build_seconds = time.perf_counter() - t0
                    _remove_stale(target)
                self._dir = target
            return self._dir

    @property
    def lexicon(self) -> dict:
        with self._lock:
            if self._lexicon is None:
                d = self.directory()
                t0 = time.perf_counter()
                lex = json.loads((d / "lexicon.json").read_text(encoding="utf-8"))
                lex["function"] = frozenset(lex["function"])
                self._lexicon = lex
                self.load_seconds += time.perf_counter() - t0
            return self._lexicon

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._arrays is None:
                d = self.directory()
                t0 = time.perf_counter()
                self._arrays = {
                    n: np.load(d / f"{n}.npy", mmap_mode="r") for n in ARRAYS
                }
                self.load_seconds += time.perf_counter() - t0
            return self._arrays

    @property
    def vocab(self) -> dict[str, int]:
        """Paraphrase-table word -> id."""
        with self._lock:
            if self._vocab is None:
                blob = self.arrays["vocab_blob"]
                t0 = time.perf_counter()
                words = bytes(blob).decode("utf-8").split("\n")
                self._vocab = dict(zip(words, range(len(words)), strict=True))
                self.load_seconds += time.perf_counter() - t0
            return self._vocab

    @property
    def stemmer(self):
        with self._lock:
            if self._stemmer is None:
                try:
                    import Stemmer  # PyStemmer

                    version = "2.2.0?"
                except ImportError as e:
                    raise DensevidError(
                        "PyStemmer is missing: pip install pystemmer==2.2.0.3"
                    ) from e
                with contextlib.suppress(Exception):
                    version = importlib.metadata.version("pystemmer")
                if not version.startswith("2.2.0"):
                    logger.warning(
                        "PyStemmer %s: METEOR's stems are checked with 2.2.0.3 "
                        "(3.x stems some words differently from the jar)",
                        version,
                    )
                self._stemmer = Stemmer.Stemmer("english")
            return self._stemmer

    def close(self) -> None:
        with self._lock:
            self._arrays = None
            self._vocab = None
            self._lexicon = None


_shared: Resources | None = None
_shared_lock = threading.Lock()


def shared_resources() -> Resources:
    """The process-wide ``Resources`` (loaded once per process)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Resources()
        return _shared
