"""METEOR 1.5 in Python, giving the statistics and scores of pycocoevalcap's jar.

``PythonMeteor`` has the methods of ``scorers.Meteor`` (the jar run as
``java -jar meteor-1.5.jar - - -stdio -l en -norm``) and returns the same
statistics lines, byte for byte, and the same scores (to the last bit of one
``pow``, see 6), without Java. What the jar does, step by step, and how it is
reproduced here:

1. The request line ``SCORE ||| ref ||| hyp`` is split on ``|||`` and each part
   trimmed (Java's ``trim``: characters up to U+0020).
2. ``-norm``: the English normaliser (punctuation split off, quotes and dashes
   normalised, contractions split, dots kept on non-breaking prefixes), then
   lower case, then words split on space, tab, newline, carriage return, form feed.
3. Matching, in stages (exact, Snowball stem, WordNet synonym, paraphrase table),
   each adding candidate (reference span, hypothesis span) matches in a fixed
   order; words are compared by Java ``String.hashCode`` in the first three stages,
   as the jar does. Identical sentences use the exact stage only.
4. Matches that are the only candidate at their position and overlap nothing are
   fixed; a beam search (40 paths, left to right over the reference) picks the
   rest, ranking paths by weighted match count (exact 1, others 0.5, truncated to
   an integer as the jar's ``int`` fields do), then chunks, then distance (with the
   jar's accounting of distance, which charges a path for the matches it tried),
   stable sorts breaking ties by insertion order.
5. Statistics: lengths, function-word counts (93 function words), matches per
   stage split into content and function words, chunks, matched words.
6. ``EVAL``: each line's score and the aggregate of the summed statistics, with
   parameters alpha 0.85, beta 0.2, gamma 0.6, delta 0.75 and stage weights
   1.0/0.6/0.8/0.6 (the default "rank" task for English), in the jar's order of
   floating-point operations. One operation cannot be reproduced bit for bit:
   ``Math.pow`` in the JVM is HotSpot's own intrinsic, which differs from the C
   library's ``pow`` in the last bit for ~0.1% of arguments (and from a correctly
   rounded or fdlibm ``pow`` more often), so a score can differ from the jar's by
   one unit in the last place of the fragmentation penalty (< 1e-16).

The search over candidate alignments runs compiled with numba when numba is
installed (``DENSEVID_METEOR_NUMBA=0`` turns it off) and in Python otherwise; both
give the same statistics.

Resources come from the installed pycocoevalcap files (``meteor_resources``).
"""

from __future__ import annotations

import contextlib
import gc
import math
import operator
import os
import re
import threading
from collections.abc import Sequence

import numpy as np

from densevid.errors import DensevidError
from densevid.metrics.meteor_resources import (
    HASH_MUL,
    MAX_PHRASE,
    NBP_ANY,
    NBP_NUM_ONLY,
    Resources,
    cache_root,
    java_tokens,
    shared_resources,
)

ALPHA, BETA, GAMMA, DELTA = 0.85, 0.20, 0.60, 0.75
STAGE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)  # exact, stem, synonym, paraphrase
N_STAGES = 4
BEAM_SIZE = 40
COMPONENT_MUL = np.uint64(0xD6E8FEB86659FD93)  # tags n-gram keys with a component
MAX_CACHED_PAIRS = 500_000  # statistics lines kept between calls (~0.2 GiB)
MAX_WORKERS = 3  # worker processes by default, each ~0.3 GiB
PATHS_CHUNK_WORDS = 100_000  # words per step of the paraphrase lookup
EXACT, STEM, SYNONYM, PARAPHRASE = range(N_STAGES)

# --- the normaliser (-norm, English, punctuation kept) ------------------------------

_ALPHA = (
    "A-Za-z\u0160\u017d\u0161\u017e\u0178\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017e"
    "\u0400-\u04ff\u0500-\u0527\ua640-\ua66e\ua67e-\ua697\u1d00-\u1d7f"
)
_ALNUM = "0-9" + _ALPHA
_JAVA_SPACE = " \t\n\x0b\x0c\r"  # Java regex \s
_SEP_OTHER = re.compile("([^" + _ALNUM + _JAVA_SPACE + r"\.'`,\-\u2018\u2019])")
_MULTI_DOT = re.compile(r"\.(\.+)")
_MULTI_DOT2 = re.compile(r"DOTMULTI\.([^.])")
_COMMA = re.compile(r"([^0-9])[,]([^0-9])")
_COMMA2 = re.compile(r"([0-9])[,]([^0-9])")
_COMMA3 = re.compile(r"([^0-9])[,]([0-9])")
_QUOTE = re.compile("([`\u2018\u2019])")
_QUOTE2 = re.compile("([\u201c\u201d]|'')")
_RM_DASH = re.compile("([" + _ALNUM + r"\.])[\-]([" + _ALNUM + "])")
_CONT1 = re.compile("([^" + _ALPHA + "])[']([^" + _ALPHA + "])")
_CONT2 = re.compile("([^" + _ALPHA + "0-9])[']([" + _ALPHA + "])")
_CONT3 = re.compile("([" + _ALPHA + "])[']([^" + _ALPHA + "])")
_CONT4 = re.compile("([" + _ALPHA + "])[']([" + _ALPHA + "])")
_CONT5 = re.compile("([0-9])[']([s])")
_NBP_ALPHA = re.compile("[" + _ALPHA + "]")
_WHITE = re.compile(
    "[ \u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000\u00a0]+"
)
_SPACED = r"\1 \2"
_PLAIN = re.compile("[A-Za-z0-9 ]*")


_CONTROL = "".join(map(chr, range(33)))


def java_trim(s: str) -> str:
    """``String.trim``: drops characters up to U+0020 at both ends."""
    if s and s[0] > " " and s[-1] > " ":
        return s
    return s.strip(_CONTROL)


def normalize(line: str, nbp: dict[str, int]) -> str:
    """METEOR's English normaliser with punctuation kept (``-norm``)."""
    s = " " + line + " "
    s = _SEP_OTHER.sub(r" \1 ", s)
    s = _MULTI_DOT.sub(r" DOTMULTI\1", s)
    while "DOTMULTI." in s:
        s = _MULTI_DOT2.sub(r"DOTDOTMULTI \1", s)
        s = s.replace("DOTMULTI.", "DOTDOTMULTI")
    s = _COMMA.sub(r"\1 , \2", s)
    s = _COMMA2.sub(r"\1 , \2", s)
    s = _COMMA3.sub(r"\1 , \2", s)
    s = _QUOTE.sub("'", s)
    s = _QUOTE2.sub(' " ', s)
    s = s.replace("\u2013", "-").replace("--", "-")
    s = _RM_DASH.sub(_SPACED, s)
    s = _CONT1.sub(r"\1 ' \2", s)
    s = _CONT2.sub(r"\1 ' \2", s)
    s = _CONT3.sub(r"\1 ' \2", s)
    s = _CONT4.sub(r"\1 '\2", s)
    s = _CONT5.sub(r"\1 '\2", s)
    words = java_tokens(s)
    out = []
    last = len(words) - 1
    for i, w in enumerate(words):
        if len(w) > 1 and w.endswith("."):
            pre = w[:-1]
            kind = nbp.get(pre)
            nxt = words[i + 1][0] if i < last else ""
            if "." in pre and _NBP_ALPHA.search(pre):
                out.append(w.replace(".", ""))
            elif (
                kind == NBP_ANY
                or "a" <= nxt <= "z"
                or (kind == NBP_NUM_ONLY and "0" <= nxt <= "9")
            ):
                out.append(w)
            else:
                out.append(pre + " .")
        else:
            out.append(w)
        out.append(" ")
    s = "".join(out)
    while "DOTDOTMULTI" in s:
        s = s.replace("DOTDOTMULTI", "DOTMULTI.")
    s = s.replace("DOTMULTI", ".")
    return java_trim(_WHITE.sub(" ", s))


def java_hash(s: str) -> int:
    """``String.hashCode`` (over UTF-16 code units, 32-bit wrap-around)."""
    h = 0
    if s.isascii():
        for c in s.encode("ascii"):
            h = (31 * h + c) & 0xFFFFFFFF
    else:
        b = s.encode("utf-16-le", "surrogatepass")
        for k in range(0, len(b), 2):
            h = (31 * h + (b[k] | (b[k + 1] << 8))) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


_NUMBERS = tuple(f"{i}.0" for i in range(1000))


def _stats_line(row: Sequence[int]) -> str:
    """23 integral statistics as the jar prints them (``Double.toString``)."""
    if max(row) < 1000 and min(row) >= 0:
        return " ".join(map(_NUMBERS.__getitem__, row))
    return " ".join(java_double(float(x)) for x in row)


def java_double(x: float) -> str:
    """``Double.toString`` of an integral statistic (all METEOR's word-level ones)."""
    if x.is_integer() and abs(x) < 1e7:
        return f"{int(x)}.0" if x or math.copysign(1.0, x) > 0 else "-0.0"
    raise ValueError(f"unexpected statistic {x!r}")  # never for word counts


# --- words and sentences --------------------------------------------------------------


class _Word:
    """What the matchers need of one (lower-cased) word, computed once."""

    __slots__ = ("function", "hash", "index", "para", "stem", "syn", "syn_array")

    def __init__(self, w: str, res: Resources, lex: dict, index: int) -> None:
        self.index = index
        self.hash = java_hash(w)
        self.stem = java_hash(res.stemmer.stemWord(w))
        self.function = w in lex["function"]
        self.syn = _synsets(w, lex)
        self.syn_array = np.array(sorted(self.syn), dtype=np.int64)
        self.para = res.vocab.get(w, -1)


_SUFFIXES = (
    ("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
    ("shes", "sh"), ("men", "man"), ("ies", "y"), ("s", ""), ("ies", "y"),
    ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
    ("er", ""), ("est", ""), ("er", "e"), ("est", "e"),
)  # fmt: skip


def _synsets(w: str, lex: dict) -> frozenset[int]:
    """The word's synsets plus its base form's (WordNet exceptions, else the
    jar's suffix rules)."""
    syn = lex["synsets"]
    sets = set(syn.get(w, ()))
    bases = lex["exceptions"].get(w)
    if bases is not None:
        for b in bases:
            sets.update(syn.get(b, ()))
    else:
        base = w
        if not (w.endswith("ss") or len(w.encode("utf-16-le", "surrogatepass")) <= 4):
            base = ""
            for suffix, add in _SUFFIXES:
                if w.endswith(suffix):
                    cand = w[: len(w) - len(suffix)] + add
                    if cand in syn:
                        base = cand
                        break
        sets.update(syn.get(base, ()))
    return frozenset(sets)


class _Sentence:
    """A normalised, tokenised sentence and its per-position data."""

    __slots__ = ("info", "keys", "n", "occ", "para", "targets")

    def __init__(self, words: Sequence[str], lookup) -> None:
        self.info = [lookup(w) for w in words]
        self.n = len(words)
        self.para = tuple(x.para for x in self.info)  # paraphrase-table word ids
        # (position, phrase length, phrase's paraphrases, order of its first one
        # at that position) of the table phrases in it whose paraphrases occur
        # in the batch, by position then length
        self.occ: list[tuple[int, int, _Phrase, int]] = []
        self.keys: frozenset[int] = frozenset()  # all their paraphrases' keys
        # key -> start positions of the n-grams that are such paraphrases (of
        # any sentence of its component of the batch)
        self.targets: dict[int, tuple[int, ...]] = {}


class _Kept:
    """The batch's kept paraphrase-table entries (those whose paraphrase occurs in
    the batch): keys, and word ids decoded on demand."""

    __slots__ = ("cache", "e0", "elen", "keys", "words")

    def __init__(
        self, keys: list[int], e0: np.ndarray, elen: np.ndarray, words
    ) -> None:
        self.keys = keys
        self.e0 = e0
        self.elen = elen
        self.words = words  # the table's paraphrase words (memory-mapped)
        self.cache: dict[int, tuple[int, ...]] = {}

    def par(self, e: int) -> tuple[int, ...]:
        t = self.cache.get(e)
        if t is None:
            start = int(self.e0[e])
            end = start + int(self.elen[e])
            t = self.cache[e] = tuple(self.words[start:end].tolist())
        return t


class _Phrase:
    """A table phrase's kept entries: ``kept`` rows start .. start + count, in
    file order; ``lookup(key)`` gives [(order among them, row)]."""

    __slots__ = ("by_key", "count", "kept", "keys", "start")

    def __init__(self, kept: _Kept, start: int, count: int) -> None:
        self.kept = kept
        self.start = start
        self.count = count
        self.keys = frozenset(kept.keys[start : start + count])
        self.by_key: dict[int, list[tuple[int, int]]] | None = None

    def lookup(self, key: int) -> list[tuple[int, int]]:
        if self.by_key is None:
            by_key: dict[int, list[tuple[int, int]]] = {}
            keys = self.kept.keys
            for k in range(self.count):
                by_key.setdefault(keys[self.start + k], []).append((k, self.start + k))
            self.by_key = by_key
        return self.by_key.get(key, ())


# --- floating point as Java does it ---------------------------------------------------


def _div(a: float, b: float) -> float:
    if b:
        return a / b
    if a != a or a == 0:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def meteor_score(v: Sequence[float]) -> float:
    """``MeteorScorer.computeMetrics`` of 23 statistics (as parsed by ``EVAL``)."""
    tl, rl, tfw, rfw = v[0], v[1], v[2], v[3]
    t_total = r_total = 0.0
    for i in range(N_STAGES):
        t_total += v[4 + 4 * i]
        t_total += v[6 + 4 * i]
        r_total += v[5 + 4 * i]
        r_total += v[7 + 4 * i]
    chunks, twm, rwm = v[20], v[21], v[22]
    return _score(tl, rl, tfw, rfw, v, t_total, r_total, chunks, twm, rwm)


def _score(tl, rl, tfw, rfw, v, t_total, r_total, chunks, twm, rwm) -> float:
    t_len = (DELTA * (tl - tfw)) + ((1.0 - DELTA) * tfw)
    r_len = (DELTA * (rl - rfw)) + ((1.0 - DELTA) * rfw)
    t_m = r_m = 0.0
    for i in range(N_STAGES):
        t_m += v[4 + 4 * i] * STAGE_WEIGHTS[i] * DELTA
    for i in range(N_STAGES):
        r_m += v[5 + 4 * i] * STAGE_WEIGHTS[i] * DELTA
    for i in range(N_STAGES):
        t_m += v[6 + 4 * i] * STAGE_WEIGHTS[i] * (1.0 - DELTA)
    for i in range(N_STAGES):
        r_m += v[7 + 4 * i] * STAGE_WEIGHTS[i] * (1.0 - DELTA)
    p = _div(t_m, t_len)
    r = _div(r_m, r_len)
    f_mean = _div(1.0, _div(1.0 - ALPHA, p) + _div(ALPHA, r))
    if t_total == tl and r_total == rl and chunks == 1:
        frag = 0.0
    else:
        frag = _div(chunks, (twm + rwm) / 2)
    penalty = GAMMA * _pow(frag, BETA)
    score = f_mean * (1.0 - penalty)
    if score != score:
        return 0.0
    return score if score > 0.0 else 0.0


def _pow(x: float, y: float) -> float:
    if x != x:
        return math.nan
    if x == math.inf:
        return math.inf
    return math.pow(x, y)


def aggregate_score(rows: Sequence[Sequence[float]]) -> float:
    """The ``EVAL`` aggregate: statistics summed (``MeteorStats.addStats``; chunks
    of perfect segments left out), then scored."""
    total = [0.0] * 23
    t_total = r_total = 0.0
    for v in rows:
        sum_t = sum_r = 0.0
        for i in range(N_STAGES):
            sum_t += v[4 + 4 * i]
            sum_t += v[6 + 4 * i]
            sum_r += v[5 + 4 * i]
            sum_r += v[7 + 4 * i]
        for k in range(20):
            total[k] += v[k]
        t_total += sum_t
        r_total += sum_r
        if not (sum_t == v[0] and sum_r == v[1] and v[20] == 1.0):
            total[20] += v[20]
        total[21] += v[21]
        total[22] += v[22]
    return _score(
        total[0], total[1], total[2], total[3], total, t_total, r_total,
        total[20], total[21], total[22],
    )  # fmt: skip


def parse_stats(line: str) -> list[float]:
    """A statistics line -> its 23 numbers (as ``EVAL`` reads them)."""
    parts = java_trim(line).split()
    if len(parts) < 23:
        raise DensevidError(
            f"METEOR statistics line {line!r} has fewer than 23 numbers"
        )
    return [float(x) for x in parts[:23]]


# --- alignment ------------------------------------------------------------------------


def _occurrences(common, occ):
    """(key, occurrence) for the occurrences whose phrase has a paraphrase key
    in ``common``."""
    for o in occ:
        keys = o[2].keys
        for key in common:
            if key in keys:
                yield key, o


def _para_matches(s1: _Sentence, s2: _Sentence) -> list[tuple[int, int, int, int]]:
    """The paraphrase stage's matches (start2, len2, start1, len1) of hypothesis
    ``s1`` and reference ``s2``, in the order the jar adds them at each reference
    position: reference phrases paraphrased in the hypothesis first (by the
    phrase's order there, then hypothesis position), then hypothesis phrases
    paraphrased in the reference (by hypothesis position, then order)."""
    found = []
    t1 = s1.targets
    if s2.keys and t1:
        common = s2.keys.intersection(t1)
        if common:
            ids = s1.para
            for key, (j, length, phrase, base) in _occurrences(common, s2.occ):
                starts = t1[key]
                for k, e in phrase.lookup(key):
                    par = phrase.kept.par(e)
                    n = len(par)
                    for i in starts:
                        if ids[i : i + n] == par:
                            found.append((j, 0, base + k, i, length, i, n))
    t2 = s2.targets
    if s1.keys and t2:
        common = s1.keys.intersection(t2)
        if common:
            ids = s2.para
            for key, (i, length, phrase, base) in _occurrences(common, s1.occ):
                starts = t2[key]
                for k, e in phrase.lookup(key):
                    par = phrase.kept.par(e)
                    n = len(par)
                    for j in starts:
                        if ids[j : j + n] == par:
                            found.append((j, 1, i, base + k, n, i, length))
    if not found:
        return []
    found.sort()
    return [(f[0], f[4], f[5], f[6]) for f in found]


def _align(s1: _Sentence, s2: _Sentence) -> list[int]:
    """Aligns hypothesis ``s1`` with reference ``s2`` (pure Python); the 23
    statistics."""
    n1, n2 = s1.n, s2.n
    h1 = [x.hash for x in s1.info]
    h2 = [x.hash for x in s2.info]
    # matches[j]: candidate matches starting at reference word j, as tuples
    # (start2, len2, start1, len1, stage)
    matches: list[list[tuple[int, int, int, int, int]]] = [[] for _ in range(n2)]
    cov1 = [0] * n1
    cov2 = [0] * n2
    identical = n1 == n2 and h1 == h2
    for j in range(n2):
        for i in range(n1):
            if h1[i] == h2[j]:
                matches[j].append((j, 1, i, 1, EXACT))
                cov1[i] += 1
                cov2[j] += 1
    if not identical and n1 and n2:
        st1 = [x.stem for x in s1.info]
        st2 = [x.stem for x in s2.info]
        for j in range(n2):
            for i in range(n1):
                if st1[i] == st2[j] and h1[i] != h2[j]:
                    matches[j].append((j, 1, i, 1, STEM))
                    cov1[i] += 1
                    cov2[j] += 1
        sy1 = [x.syn for x in s1.info]
        sy2 = [x.syn for x in s2.info]
        for j in range(n2):
            if sy2[j]:
                for i in range(n1):
                    if h1[i] != h2[j] and not sy1[i].isdisjoint(sy2[j]):
                        matches[j].append((j, 1, i, 1, SYNONYM))
                        cov1[i] += 1
                        cov2[j] += 1
        for start, length, mstart, mlength in _para_matches(s1, s2):
            matches[start].append((start, length, mstart, mlength, PARAPHRASE))
            for k in range(mlength):
                cov1[mstart + k] += 1
            for k in range(length):
                cov2[start + k] += 1
    return _resolve(s1, s2, matches, cov1, cov2)


def _resolve(s1, s2, matches, cov1, cov2) -> list[int]:
    n1, n2 = s1.n, s2.n
    fixed: list = [None] * n2
    used1 = used2 = 0
    for j in range(n2):
        if len(matches[j]) == 1:
            m = matches[j][0]
            start, length, mstart, mlength, _ = m
            if all(cov2[start + k] == 1 for k in range(length)) and all(
                cov1[mstart + k] == 1 for k in range(mlength)
            ):
                fixed[j] = m
                used2 |= ((1 << length) - 1) << start
                used1 |= ((1 << mlength) - 1) << mstart
    best = _beam(n2, matches, fixed, used1, used2)
    chosen = list(fixed)
    link = best[8]
    while link is not None:
        m, link = link
        chosen[m[0]] = m
    # statistics
    fw1 = [x.function for x in s1.info]
    fw2 = [x.function for x in s2.info]
    c1 = [0] * N_STAGES
    c2 = [0] * N_STAGES
    f1 = [0] * N_STAGES
    f2 = [0] * N_STAGES
    for m in chosen:
        if m is not None:
            start, length, mstart, mlength, stage = m
            for k in range(mstart, mstart + mlength):
                if fw1[k]:
                    f1[stage] += 1
                else:
                    c1[stage] += 1
            for k in range(start, start + length):
                if fw2[k]:
                    f2[stage] += 1
                else:
                    c2[stage] += 1
    chunks = 0
    idx = 0
    last_end = -1
    while idx < n2:
        m = chosen[idx]
        if m is None:
            if last_end != -1:
                chunks += 1
                last_end = -1
            idx += 1
        else:
            if last_end != -1 and m[2] != last_end:
                chunks += 1
            idx = m[0] + m[1]
            last_end = m[2] + m[3]
    if last_end != -1:
        chunks += 1
    fields = [n1, n2, sum(fw1), sum(fw2)]
    for i in range(N_STAGES):
        fields += (c1[i], c2[i], f1[i], f2[i])
    fields += (chunks, sum(c1) + sum(f1), sum(c2) + sum(f2))
    return fields


_key = operator.itemgetter(0, 1, 2)


def _beam(n2, matches, fixed, used1, used2):
    """The jar's beam search. A path is a list
    [-weighted matches, chunks, distance, idx, last_end, used1, used2, _, chain]
    (sorted on its first three), where chain links the chosen matches
    ((match, previous link) or None). Weighted matches: exact words count 1,
    others 0.5 each, truncated per match and side (the jar's int fields)."""
    paths = [[0, 0, 0, 0, -1, used1, used2, 0, None]]
    for current in range(n2 + 1):
        if len(paths) > 1:
            paths.sort(key=_key)
        nxt = []
        bit = 1 << current
        cand = matches[current] if current < n2 else None
        for path in paths[:BEAM_SIZE]:
            if current == n2:
                if path[4] != -1:
                    path[1] += 1
                nxt.append(path)
                continue
            if path[6] & bit:
                if current < path[3]:
                    nxt.append(path)
                else:
                    m = fixed[path[3]]
                    if m is not None:
                        start, length, mstart, mlength, stage = m
                        if stage == EXACT:
                            path[0] -= mlength + length
                        else:
                            path[0] -= (mlength >> 1) + (length >> 1)
                        if path[4] != -1 and mstart != path[4]:
                            path[1] += 1
                        path[3] = start + length
                        path[4] = mstart + mlength
                        path[2] += abs(start - mstart)
                        nxt.append(path)
                continue
            u1, u2 = path[5], path[6]
            for m in cand:
                start, length, mstart, mlength, stage = m
                mask2 = ((1 << length) - 1) << start
                mask1 = ((1 << mlength) - 1) << mstart
                if u2 & mask2 or u1 & mask1:
                    continue
                if stage == EXACT:
                    w = path[0] - mlength - length
                else:
                    w = path[0] - (mlength >> 1) - (length >> 1)
                chunks = path[1]
                if path[4] != -1 and mstart != path[4]:
                    chunks += 1
                nxt.append(
                    [w, chunks, path[2], start + length, mstart + mlength,
                     u1 | mask1, u2 | mask2, 0, (m, path[8])]
                )  # fmt: skip
                path[2] += abs(start - mstart)  # charged to the parent (as the jar)
            if path[4] != -1:
                path[1] += 1
                path[4] = -1
            path[3] += 1
            nxt.append(path)
        if not nxt:
            nxt.append(paths[0])
        paths = nxt
    paths.sort(key=_key)
    return paths[0]


# --- the same, compiled (numba), for whole batches ------------------------------------

MAX_WORDS_COMPILED = 62  # words per sentence the compiled search handles (bit masks)
_DIST_LIMIT = 1 << 26  # distances past this leave the pair to the Python search


def _kernel_impl(
    pair1, pair2, tok_off, tok_word, w_hash, w_stem, w_fw, syn_off, syn_ids,
    pm_off, pm, out,
):  # fmt: skip
    """Statistics of every pair (rows of ``out``); returns a flag per pair set
    where the pair must go to the Python search instead."""
    n_pairs = len(pair1)
    flags = np.zeros(n_pairs, np.uint8)
    maxn = MAX_WORDS_COMPILED
    # scratch, sized for the largest pair
    max_pm = 0
    for p in range(n_pairs):
        k = pm_off[p + 1] - pm_off[p]
        if k > max_pm:
            max_pm = k
    cap_m = maxn * maxn * 3 + max_pm + 1
    m_s = np.empty(cap_m, np.int64)
    m_l = np.empty(cap_m, np.int64)
    m_ms = np.empty(cap_m, np.int64)
    m_ml = np.empty(cap_m, np.int64)
    m_st = np.empty(cap_m, np.int64)
    jptr = np.empty(maxn + 2, np.int64)
    cov1 = np.empty(maxn, np.int64)
    cov2 = np.empty(maxn, np.int64)
    fixed = np.empty(maxn, np.int64)
    chosen = np.empty(maxn, np.int64)
    cap = 0
    pool = 0
    cur_buf = np.empty((8, 1), np.int64)
    nxt_buf = np.empty((8, 1), np.int64)
    keys = np.empty(1, np.int64)
    node_m = np.empty(1, np.int64)
    node_prev = np.empty(1, np.int64)
    for p in range(n_pairs):
        a = pair1[p]
        b = pair2[p]
        o1 = tok_off[a]
        n1 = tok_off[a + 1] - o1
        o2 = tok_off[b]
        n2 = tok_off[b + 1] - o2
        if n1 > maxn or n2 > maxn:
            flags[p] = 1
            continue
        identical = n1 == n2
        if identical:
            for i in range(n1):
                if w_hash[tok_word[o1 + i]] != w_hash[tok_word[o2 + i]]:
                    identical = False
                    break
        for i in range(n1):
            cov1[i] = 0
        for j in range(n2):
            cov2[j] = 0
        nm = 0
        q = pm_off[p]
        q_end = pm_off[p + 1]
        for j in range(n2):
            jptr[j] = nm
            wj = tok_word[o2 + j]
            hj = w_hash[wj]
            for i in range(n1):
                if w_hash[tok_word[o1 + i]] == hj:
                    m_s[nm] = j
                    m_l[nm] = 1
                    m_ms[nm] = i
                    m_ml[nm] = 1
                    m_st[nm] = 0
                    nm += 1
                    cov1[i] += 1
                    cov2[j] += 1
            if identical or n1 == 0:
                continue
            sj = w_stem[wj]
            for i in range(n1):
                wi = tok_word[o1 + i]
                if w_stem[wi] == sj and w_hash[wi] != hj:
                    m_s[nm] = j
                    m_l[nm] = 1
                    m_ms[nm] = i
                    m_ml[nm] = 1
                    m_st[nm] = 1
                    nm += 1
                    cov1[i] += 1
                    cov2[j] += 1
            a0 = syn_off[wj]
            a1 = syn_off[wj + 1]
            if a1 > a0:
                for i in range(n1):
                    wi = tok_word[o1 + i]
                    if w_hash[wi] == hj:
                        continue
                    b0 = syn_off[wi]
                    b1 = syn_off[wi + 1]
                    x = a0
                    y = b0
                    hit = False
                    while x < a1 and y < b1:
                        if syn_ids[x] == syn_ids[y]:
                            hit = True
                            break
                        if syn_ids[x] < syn_ids[y]:
                            x += 1
                        else:
                            y += 1
                    if hit:
                        m_s[nm] = j
                        m_l[nm] = 1
                        m_ms[nm] = i
                        m_ml[nm] = 1
                        m_st[nm] = 2
                        nm += 1
                        cov1[i] += 1
                        cov2[j] += 1
            while q < q_end and pm[q, 0] == j:
                m_s[nm] = j
                m_l[nm] = pm[q, 1]
                m_ms[nm] = pm[q, 2]
                m_ml[nm] = pm[q, 3]
                m_st[nm] = 3
                for k in range(pm[q, 3]):
                    cov1[pm[q, 2] + k] += 1
                for k in range(pm[q, 1]):
                    cov2[j + k] += 1
                nm += 1
                q += 1
        jptr[n2] = nm
        # definite matches
        used1 = np.int64(0)
        used2 = np.int64(0)
        max_c = 0
        for j in range(n2):
            fixed[j] = -1
            c = jptr[j + 1] - jptr[j]
            if c > max_c:
                max_c = c
            if c == 1:
                k = jptr[j]
                ok = True
                for t in range(m_l[k]):
                    if cov2[m_s[k] + t] != 1:
                        ok = False
                for t in range(m_ml[k]):
                    if cov1[m_ms[k] + t] != 1:
                        ok = False
                if ok:
                    fixed[j] = k
                    used2 |= ((np.int64(1) << m_l[k]) - 1) << m_s[k]
                    used1 |= ((np.int64(1) << m_ml[k]) - 1) << m_ms[k]
        # beam search (scratch grows to the largest pair's need)
        need = BEAM_SIZE * (max_c + 1) + 1
        if need > cap:
            cap = need
            cur_buf = np.empty((8, cap), np.int64)
            nxt_buf = np.empty((8, cap), np.int64)
            keys = np.empty(cap, np.int64)
        if n2 * need > pool:
            pool = n2 * need
            node_m = np.empty(pool, np.int64)
            node_prev = np.empty(pool, np.int64)
        cw, cc, cd, ci = cur_buf[0], cur_buf[1], cur_buf[2], cur_buf[3]
        cl, cu1, cu2, cch = cur_buf[4], cur_buf[5], cur_buf[6], cur_buf[7]
        nw, nc, nd, ni = nxt_buf[0], nxt_buf[1], nxt_buf[2], nxt_buf[3]
        nl, nu1, nu2, nch = nxt_buf[4], nxt_buf[5], nxt_buf[6], nxt_buf[7]
        n_nodes = 0
        n_cur = 1
        cw[0] = 0
        cc[0] = 0
        cd[0] = 0
        ci[0] = 0
        cl[0] = -1
        cu1[0] = used1
        cu2[0] = used2
        cch[0] = -1
        overflow = False
        for current in range(n2 + 1):
            for r in range(n_cur):
                if cd[r] >= _DIST_LIMIT:
                    overflow = True
                keys[r] = ((cw[r] + 1024) << 42) | (cc[r] << 26) | cd[r]
            if overflow:
                break
            if n_cur > 1:
                order = np.argsort(keys[:n_cur], kind="mergesort")
            else:
                order = np.zeros(1, np.int64)
            n_next = 0
            top = min(n_cur, BEAM_SIZE)
            for r in range(top):
                x = order[r]
                w = cw[x]
                c = cc[x]
                d = cd[x]
                idx = ci[x]
                last = cl[x]
                u1 = cu1[x]
                u2 = cu2[x]
                ch = cch[x]
                if current == n2:
                    if last != -1:
                        c += 1
                elif (u2 >> current) & 1:
                    if current >= idx:
                        k = fixed[idx]
                        if k < 0:
                            continue  # dropped, as the jar does
                        if m_st[k] == 0:
                            w -= m_ml[k] + m_l[k]
                        else:
                            w -= (m_ml[k] >> 1) + (m_l[k] >> 1)
                        if last != -1 and m_ms[k] != last:
                            c += 1
                        idx = m_s[k] + m_l[k]
                        last = m_ms[k] + m_ml[k]
                        d += abs(m_s[k] - m_ms[k])
                else:
                    for k in range(jptr[current], jptr[current + 1]):
                        mask2 = ((np.int64(1) << m_l[k]) - 1) << m_s[k]
                        mask1 = ((np.int64(1) << m_ml[k]) - 1) << m_ms[k]
                        if (u2 & mask2) != 0 or (u1 & mask1) != 0:
                            continue
                        if m_st[k] == 0:
                            nw[n_next] = w - m_ml[k] - m_l[k]
                        else:
                            nw[n_next] = w - (m_ml[k] >> 1) - (m_l[k] >> 1)
                        if last != -1 and m_ms[k] != last:
                            nc[n_next] = c + 1
                        else:
                            nc[n_next] = c
                        nd[n_next] = d
                        ni[n_next] = m_s[k] + m_l[k]
                        nl[n_next] = m_ms[k] + m_ml[k]
                        nu1[n_next] = u1 | mask1
                        nu2[n_next] = u2 | mask2
                        node_m[n_nodes] = k
                        node_prev[n_nodes] = ch
                        nch[n_next] = n_nodes
                        n_nodes += 1
                        n_next += 1
                        d += abs(m_s[k] - m_ms[k])  # charged to the parent
                    if last != -1:
                        c += 1
                        last = -1
                    idx += 1
                nw[n_next] = w
                nc[n_next] = c
                nd[n_next] = d
                ni[n_next] = idx
                nl[n_next] = last
                nu1[n_next] = u1
                nu2[n_next] = u2
                nch[n_next] = ch
                n_next += 1
            if n_next == 0:  # keep the best path, as the jar does
                x = order[0]
                nw[0] = cw[x]
                nc[0] = cc[x]
                nd[0] = cd[x]
                ni[0] = ci[x]
                nl[0] = cl[x]
                nu1[0] = cu1[x]
                nu2[0] = cu2[x]
                nch[0] = cch[x]
                n_next = 1
            cw, nw = nw, cw
            cc, nc = nc, cc
            cd, nd = nd, cd
            ci, ni = ni, ci
            cl, nl = nl, cl
            cu1, nu1 = nu1, cu1
            cu2, nu2 = nu2, cu2
            cch, nch = nch, cch
            n_cur = n_next
        if not overflow:
            for r in range(n_cur):
                if cd[r] >= _DIST_LIMIT:
                    overflow = True
                keys[r] = ((cw[r] + 1024) << 42) | (cc[r] << 26) | cd[r]
        if overflow:
            flags[p] = 1
            continue
        best = 0
        if n_cur > 1:
            best = np.argsort(keys[:n_cur], kind="mergesort")[0]
        for j in range(n2):
            chosen[j] = fixed[j]
        node = cch[best]
        while node >= 0:
            k = node_m[node]
            chosen[m_s[k]] = k
            node = node_prev[node]
        # statistics
        row = out[p]
        for t in range(23):
            row[t] = 0
        row[0] = n1
        row[1] = n2
        for i in range(n1):
            row[2] += w_fw[tok_word[o1 + i]]
        for j in range(n2):
            row[3] += w_fw[tok_word[o2 + j]]
        for j in range(n2):
            k = chosen[j]
            if k < 0:
                continue
            st = m_st[k]
            for t in range(m_ms[k], m_ms[k] + m_ml[k]):
                if w_fw[tok_word[o1 + t]]:
                    row[6 + 4 * st] += 1
                else:
                    row[4 + 4 * st] += 1
                row[21] += 1
            for t in range(m_s[k], m_s[k] + m_l[k]):
                if w_fw[tok_word[o2 + t]]:
                    row[7 + 4 * st] += 1
                else:
                    row[5 + 4 * st] += 1
                row[22] += 1
        chunks = 0
        idx = 0
        last = -1
        while idx < n2:
            k = chosen[idx]
            if k < 0:
                if last != -1:
                    chunks += 1
                    last = -1
                idx += 1
            else:
                if last != -1 and m_ms[k] != last:
                    chunks += 1
                idx = m_s[k] + m_l[k]
                last = m_ms[k] + m_ml[k]
        if last != -1:
            chunks += 1
        row[20] = chunks
    return flags


_kernel = None
_kernel_lock = threading.Lock()


def compiled_kernel():
    """The numba-compiled batch search (compiled once, ~4 s, then cached under
    the densevid cache directory), or None without numba
    (``DENSEVID_METEOR_NUMBA=0`` also turns it off)."""
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            _kernel = False
            if os.environ.get("DENSEVID_METEOR_NUMBA", "1") != "0":
                try:
                    import numba
                except ImportError:
                    numba = None
                if numba is not None:
                    # compiled code cached with densevid's other caches (numba's
                    # setting is read when the function is decorated)
                    saved = numba.config.CACHE_DIR
                    if not saved:
                        numba.config.CACHE_DIR = str(cache_root() / "numba")
                    try:
                        _kernel = numba.njit(cache=True, nogil=True)(_kernel_impl)
                    finally:
                        numba.config.CACHE_DIR = saved
        return _kernel or None


# --- the scorer -----------------------------------------------------------------------


def _request_parts(hyp: str, ref: str) -> tuple[str, str]:
    """(test, reference) as the jar reads them from ``scorers._score_line``'s line."""
    if "|" not in hyp and "|" not in ref:
        return java_trim(hyp.replace("  ", " ")), java_trim(ref)
    hyp = hyp.replace("|||", "").replace("  ", " ")
    ref = ref.replace("|||", "")
    line = f"SCORE ||| {ref} ||| {hyp}"
    parts = line.split("|||")
    while parts and parts[-1] == "":
        parts.pop()
    if len(parts) != 3:
        raise DensevidError(f"METEOR: cannot score the pair {(hyp, ref)!r}")
    return java_trim(parts[2]), java_trim(parts[1])


class PythonMeteor:
    """METEOR 1.5 as pycocoevalcap's jar computes it, in Python (no Java).

    Same methods as ``scorers.Meteor``: ``stats`` (statistics lines, byte-identical
    to the jar's ``SCORE`` answers), ``corpus_scores`` and ``sentence_scores``
    (the jar's ``EVAL`` answers as floats). Constructing one is cheap; the language
    resources load on first use (``meteor_resources``; the first use on a machine
    converts the paraphrase table once, ~15 s, 1.1 GiB at peak).

    Texts are taken as the jar reads one request line: a text holding a line
    break (which desynchronises the jar's line protocol) is scored here with the
    break as a space.

    With ``n_workers`` > 0 the pairs are scored in that many worker processes
    (started at once, so that they load while the caller reads its files), which
    leaves this process free for other work: ``evaluate`` computes the n-gram
    metrics meanwhile.

    Args:
        resources: the ``Resources`` to use (default: the process-wide one).
        n_workers: worker processes (default: one per core but one, at most
            ``MAX_WORKERS``; 0 scores in this process).
    """

    def __init__(
        self, resources: Resources | None = None, n_workers: int | None = None
    ) -> None:
        self._res = resources
        if n_workers is None:
            n_workers = min(MAX_WORKERS, (os.cpu_count() or 1) - 1)
        self._workers = _start_workers(max(0, n_workers)) if resources is None else []
        self._closed = False
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], str] = {}
        self._norm: dict[str, tuple[str, ...]] = {}
        self._words: dict[str, _Word] = {}
        self._word_list: list[_Word] = []
        self._w_hash = np.zeros(0, np.int64)

    def __enter__(self) -> PythonMeteor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        for conn, proc in self._workers:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
                conn.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        self._workers = []
        self._stats.clear()
        self._norm.clear()
        self._words.clear()
        self._word_list = []
        self._w_hash = np.zeros(0, np.int64)

    @property
    def resources(self) -> Resources:
        if self._res is None:
            self._res = shared_resources()
        return self._res

    def _check(self) -> None:
        if self._closed:
            raise DensevidError("this Meteor scorer was closed")

    def stats(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """METEOR statistics lines of (hypothesis, reference) pairs, each distinct
        pair scored once."""
        self._check()
        with self._lock:
            todo = list(dict.fromkeys(p for p in pairs if p not in self._stats))
            if todo:
                if len(self._stats) + len(todo) > MAX_CACHED_PAIRS:
                    self._stats.clear()  # and score again what it held of these
                    todo = list(dict.fromkeys(pairs))
                # Millions of small objects, none cyclic: the cycle collector
                # would only rescan them (a third of the time).
                enabled = gc.isenabled()
                gc.disable()
                try:
                    if self._workers:
                        lines = self._score_in_workers(todo)
                    else:
                        lines = self._score_pairs(todo)
                finally:
                    if enabled:
                        gc.enable()
                self._stats.update(zip(todo, lines, strict=True))
            return [self._stats[p] for p in pairs]

    def corpus_scores(self, groups: Sequence[Sequence[str]]) -> list[float]:
        """For each group of statistics lines, the jar's ``EVAL`` aggregate."""
        self._check()
        out = []
        for g in groups:
            if not g:
                raise DensevidError("METEOR: no statistics to aggregate")
            out.append(aggregate_score([parse_stats(s) for s in g]))
        return out

    def sentence_scores(self, stats: Sequence[str]) -> list[float]:
        """The per-pair METEOR of statistics lines."""
        self._check()
        return [meteor_score(parse_stats(s)) for s in stats]

    # -- internals --

    def _tokens(self, text: str) -> tuple[str, ...]:
        toks = self._norm.get(text)
        if toks is None:
            if _PLAIN.fullmatch(text):  # what the normaliser leaves as it is
                toks = tuple(w for w in text.lower().split(" ") if w)
            else:
                nbp = self.resources.lexicon["nbp"]
                toks = tuple(java_tokens(normalize(text, nbp).lower()))
            if len(self._norm) > MAX_CACHED_PAIRS:
                self._norm.clear()
            self._norm[text] = toks
        return toks

    def _word(self, w: str) -> _Word:
        x = self._words.get(w)
        if x is None:
            res = self.resources
            x = self._words[w] = _Word(w, res, res.lexicon, len(self._words))
            self._word_list.append(x)
        return x

    def _score_in_workers(self, pairs: list[tuple[str, str]]) -> list[str]:
        """The pairs split evenly over the worker processes, answers in order."""
        n = len(self._workers)
        size = -(-len(pairs) // n)
        chunks = [pairs[i * size : (i + 1) * size] for i in range(n)]
        busy = []
        try:
            for (conn, _), chunk in zip(self._workers, chunks, strict=True):
                if chunk:
                    conn.send(chunk)
                    busy.append(conn)
            out: list[str] = []
            for conn in busy:
                kind, value = conn.recv()
                if kind == "error":
                    raise DensevidError(f"METEOR worker failed: {value}")
                out.extend(value)
        except (EOFError, OSError) as e:
            self.close()  # a worker died: later calls must not reuse this scorer
            raise DensevidError(f"a METEOR worker process stopped ({e!r})") from e
        return out

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[str]:
        parts = [_request_parts(h, r) for h, r in pairs]
        texts = list(dict.fromkeys(t for p in parts for t in p))
        index = {t: k for k, t in enumerate(texts)}
        sents = [_Sentence(self._tokens(t), self._word) for t in texts]
        s1 = [index[t] for t, _ in parts]
        s2 = [index[r] for _, r in parts]
        _add_paths(sents, self.resources, s1, s2)
        kernel = compiled_kernel()
        if kernel is None:
            rows = [_align(sents[a], sents[b]) for a, b in zip(s1, s2, strict=True)]
        else:
            rows = self._run_kernel(kernel, sents, s1, s2).tolist()
        return [_stats_line(row) for row in rows]

    def _run_kernel(self, kernel, sents, s1, s2) -> np.ndarray:
        words = self._word_list
        if len(self._w_hash) != len(words):  # word tables grow with the cache
            self._w_hash = np.array([w.hash for w in words], np.int64)
            self._w_stem = np.array([w.stem for w in words], np.int64)
            self._w_fw = np.array([w.function for w in words], np.int64)
            lens = [len(w.syn_array) for w in words]
            self._syn_off = np.zeros(len(words) + 1, np.int64)
            np.cumsum(lens, out=self._syn_off[1:])
            self._syn_ids = (
                np.concatenate([w.syn_array for w in words]).astype(np.int64)
                if sum(lens)
                else np.zeros(1, np.int64)
            )
        tok_off = np.zeros(len(sents) + 1, np.int64)
        np.cumsum([s.n for s in sents], out=tok_off[1:])
        tok_word = np.fromiter(
            (x.index for s in sents for x in s.info), np.int64, int(tok_off[-1])
        )
        pm_rows: list[tuple[int, int, int, int]] = []
        pm_off = np.zeros(len(s1) + 1, np.int64)
        for p, (a, b) in enumerate(zip(s1, s2, strict=True)):
            sa, sb = sents[a], sents[b]
            if (sb.keys and sa.targets) or (sa.keys and sb.targets):
                pm_rows += _para_matches(sa, sb)
            pm_off[p + 1] = len(pm_rows)
        pm = np.array(pm_rows, np.int64).reshape(-1, 4)
        if not len(pm):
            pm = np.zeros((1, 4), np.int64)
        out = np.zeros((len(s1), 23), np.int64)
        flags = kernel(
            np.asarray(s1, np.int64), np.asarray(s2, np.int64), tok_off, tok_word,
            self._w_hash, self._w_stem, self._w_fw, self._syn_off, self._syn_ids,
            pm_off, pm, out,
        )  # fmt: skip
        for p in np.flatnonzero(flags).tolist():
            out[p] = _align(sents[s1[p]], sents[s2[p]])
        return out


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in ``sorted_keys``, -1 where absent (queries are sorted
    first: a binary search over sorted queries is many times faster)."""
    if not len(sorted_keys):
        return np.full(len(queries), -1, np.int64)
    order = np.argsort(queries)
    q = queries[order]
    idx = np.searchsorted(sorted_keys, q)
    idx[idx == len(sorted_keys)] = 0
    idx[sorted_keys[idx] != q] = -1
    del q
    out = np.empty(len(queries), np.int64)
    out[order] = idx
    return out


def _components(n: int, s1: list[int], s2: list[int]) -> np.ndarray:
    """Connected components of the sentences linked by pairs (e.g. a video's
    predictions and references): a paraphrase can only matter within one."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(s1, s2, strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    return np.fromiter((find(x) for x in range(n)), np.int64, n)


def _add_paths(
    sents: list[_Sentence], res: Resources, s1: list[int], s2: list[int]
) -> None:
    """Fills each sentence's ``occ``, ``keys`` and ``targets``: the table phrases
    in it with their paraphrases that occur in its component of the batch, and
    where such paraphrases occur in it. Everything is keyed by the hash of the
    word ids; matches are confirmed on the word ids themselves
    (``_para_matches``). Done for groups of whole components at a time (the
    temporaries grow with the number of words)."""
    comp = _components(len(sents), s1, s2)
    order = np.argsort(comp, kind="stable")
    chunk: list[int] = []
    n_tok = 0
    for k, si in enumerate(order.tolist()):
        chunk.append(si)
        n_tok += sents[si].n
        last = k == len(order) - 1
        if last or (n_tok >= PATHS_CHUNK_WORDS and comp[order[k + 1]] != comp[si]):
            _add_paths_chunk([sents[i] for i in chunk], res, comp[chunk])
            chunk, n_tok = [], 0


def _add_paths_chunk(sents: list[_Sentence], res: Resources, comp: np.ndarray) -> None:
    lengths = [s.n for s in sents]
    n_tok = sum(lengths)
    if not n_tok:
        return
    a = res.arrays
    ids = np.fromiter((i for s in sents for i in s.para), np.int64, n_tok)
    sent_of = np.repeat(np.arange(len(sents)), lengths)
    offsets = np.zeros(len(sents) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    end = offsets[1:][sent_of]
    pos = np.arange(n_tok, dtype=np.int32)
    keys = np.zeros(n_tok, np.uint64)
    live = ids >= 0
    all_keys, all_pos, all_len = [], [], []
    for k in range(MAX_PHRASE):
        p = pos + k
        live = live & (p < end)
        live[live] &= ids[p[live]] >= 0
        if not live.any():
            break
        keys[live] = keys[live] * HASH_MUL + (ids[p[live]] + 1).astype(np.uint64)
        all_keys.append(keys[live])
        all_pos.append(pos[live])
        all_len.append(np.full(int(live.sum()), k + 1, np.int8))
    if not all_keys:
        return
    gkeys = np.concatenate(all_keys)
    gpos = np.concatenate(all_pos)
    glen = np.concatenate(all_len)
    del all_keys, all_pos, all_len, keys, live, pos, p, end
    # table phrases among the batch's n-grams (keys are unique in the table;
    # a hit is confirmed on the word ids)
    pk = np.asarray(a["phrase_keys"])
    lo = _lookup(pk, gkeys)
    hit = np.flatnonzero(lo >= 0)
    if not len(hit):
        return
    ph = lo[hit]
    po = a["phrase_offsets"]
    pw = a["phrase_words"]
    hpos, hlen = gpos[hit], glen[hit]
    ok = (po[ph + 1] - po[ph]) == hlen
    for k in range(MAX_PHRASE):
        sel = ok & (hlen > k)
        ok[sel] = pw[po[ph[sel]] + k] == ids[hpos[sel] + k]
    hit, ph, hpos, hlen = hit[ok], ph[ok], hpos[ok], hlen[ok]
    if not len(hit):
        return
    # n-gram keys tagged with their component (a wrong tag could only keep an
    # entry too many, never lose one)
    tag_of_tok = comp[sent_of].astype(np.uint64) * COMPONENT_MUL
    tagged = gkeys ^ tag_of_tok[gpos]
    tag_order = np.argsort(tagged)
    batch_grams = tagged[tag_order]
    # the entries of each (component, phrase) whose paraphrase occurs there
    n_phr = len(pk)
    cp = comp[sent_of[hpos]] * n_phr + ph
    distinct, inverse = np.unique(cp, return_inverse=True)
    d_phrase = distinct % n_phr
    d_tag = (distinct // n_phr).astype(np.uint64) * COMPONENT_MUL
    pe = a["phrase_entries"]
    starts = np.asarray(pe[d_phrase, 0])
    counts = np.asarray(pe[d_phrase, 1]) - starts
    first = np.cumsum(counts) - counts
    entry = np.repeat(starts - first, counts) + np.arange(int(counts.sum()))
    owner = np.repeat(np.arange(len(distinct)), counts)
    par_keys = np.asarray(a["par_keys"][entry])
    par_tagged = par_keys ^ d_tag[owner]
    keep = np.flatnonzero(_lookup(batch_grams, par_tagged) >= 0)
    if not len(keep):
        return
    owner = owner[keep]
    entry = entry[keep]
    par_keys = par_keys[keep]
    par_tagged = par_tagged[keep]
    paro = a["par_offsets"]
    e0 = np.asarray(paro[entry])
    elen = np.asarray(paro[entry + 1]) - e0
    kept = _Kept(par_keys.tolist(), e0, elen, a["par_words"])
    # kept rows are grouped by (component, phrase), owner ascending
    bounds = np.searchsorted(owner, np.arange(len(distinct) + 1))
    phrases: dict[int, _Phrase] = {}
    for o in np.flatnonzero(np.diff(bounds)).tolist():
        phrases[o] = _Phrase(kept, int(bounds[o]), int(bounds[o + 1] - bounds[o]))
    # per sentence: phrase occurrences by position then length
    has = np.zeros(len(distinct), bool)
    has[owner] = True
    use = np.flatnonzero(has[inverse])
    use = use[np.lexsort((hlen[use], hpos[use]))]
    u_pos = hpos[use]
    u_sent = sent_of[u_pos]
    u_owner = inverse[use]
    # order of a phrase's first kept entry among all kept at its position
    count = np.diff(bounds)[u_owner]
    before = np.cumsum(count) - count
    new_pos = np.ones(len(use), bool)
    new_pos[1:] = u_pos[1:] != u_pos[:-1]
    base = before - before[new_pos][np.cumsum(new_pos) - 1]
    rows = list(
        zip(
            (u_pos - offsets[u_sent]).tolist(), hlen[use].tolist(),
            map(phrases.__getitem__, u_owner.tolist()), base.tolist(), strict=True,
        )
    )  # fmt: skip
    cut = np.searchsorted(u_sent, np.arange(len(sents) + 1)).tolist()
    for si in np.unique(u_sent).tolist():
        s = sents[si]
        s.occ = rows[cut[si] : cut[si + 1]]
        s.keys = frozenset().union(*[occ[2].keys for occ in s.occ])
    # where the kept paraphrases occur (in their component)
    wanted = np.unique(par_tagged)
    j = np.searchsorted(wanted, batch_grams)  # sorted queries: fast
    j[j == len(wanted)] = 0
    at = np.sort(tag_order[wanted[j] == batch_grams])  # n-gram order: by position
    at = at[np.argsort(gpos[at], kind="stable")]
    t_pos = gpos[at]
    t_sent = sent_of[t_pos]
    t_lp = (t_pos - offsets[t_sent]).tolist()
    t_key = gkeys[at].tolist()
    cut = np.searchsorted(t_sent, np.arange(len(sents) + 1)).tolist()
    for si in np.unique(t_sent).tolist():
        b0, b1 = cut[si], cut[si + 1]
        keys = t_key[b0:b1]
        targets = dict(zip(keys, zip(t_lp[b0:b1], strict=True), strict=True))
        if len(targets) < len(keys):  # a paraphrase twice in the sentence
            targets = {}
            for key, lp in zip(keys, t_lp[b0:b1], strict=True):
                targets[key] = (*targets.get(key, ()), lp)
        sents[si].targets = targets


def _start_workers(n: int) -> list:
    """``n`` worker processes (spawned: a fork would copy the caller's threads),
    each with a pipe; they load the resources at once."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(n):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        proc.start()
        child.close()
        workers.append((parent, proc))
    return workers


def _worker(conn) -> None:
    """A worker's loop: lists of pairs in, ("ok", lines) or ("error", text) out;
    None, or the parent gone, ends it. Ctrl-C is the parent's to handle (it
    closes the pipe), so the worker ignores it rather than print a traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    meteor = PythonMeteor(shared_resources(), n_workers=0)
    meteor.resources.lexicon  # noqa: B018 (load while the parent reads its files)
    compiled_kernel()
    gc.disable()  # millions of small acyclic objects (see ``stats``)
    while True:
        try:
            pairs = conn.recv()
        except (EOFError, OSError):
            return
        if pairs is None:
            return
        try:
            reply = ("ok", meteor._score_pairs(pairs))
        except Exception as e:  # reported in the parent as one error
            reply = ("error", f"{type(e).__name__}: {e}")
        try:
            conn.send(reply)
        except OSError:  # the parent is gone (stopped, or Ctrl-C)
            return
