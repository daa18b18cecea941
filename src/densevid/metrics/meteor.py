"""METEOR 1.5 in Python, giving the statistics and scores of pycocoevalcap's jar.

``PythonMeteor`` has the methods of ``scorers.Meteor`` (the jar run as
``java -jar meteor-1.5.jar - - -stdio -l en -norm``) and returns the same
statistics lines, byte for byte, and the same scores, without Java. What the jar
does, step by step, and how it is reproduced here:

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
   floating-point operations.

Resources come from the installed pycocoevalcap files (``meteor_resources``).
"""

from __future__ import annotations

import math
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
    java_tokens,
    shared_resources,
)

ALPHA, BETA, GAMMA, DELTA = 0.85, 0.20, 0.60, 0.75
STAGE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)  # exact, stem, synonym, paraphrase
N_STAGES = 4
BEAM_SIZE = 40
MAX_CACHED_PAIRS = 2_000_000
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


def java_trim(s: str) -> str:
    """``String.trim``: drops characters up to U+0020 at both ends."""
    i, j = 0, len(s)
    while i < j and s[i] <= " ":
        i += 1
    while j > i and s[j - 1] <= " ":
        j -= 1
    return s[i:j]


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


def java_double(x: float) -> str:
    """``Double.toString`` of an integral statistic (all METEOR's word-level ones)."""
    if x.is_integer() and abs(x) < 1e7:
        return f"{int(x)}.0" if x or math.copysign(1.0, x) > 0 else "-0.0"
    raise ValueError(f"unexpected statistic {x!r}")  # never for word counts


# --- words and sentences --------------------------------------------------------------


class _Word:
    """What the matchers need of one (lower-cased) word, computed once."""

    __slots__ = ("function", "hash", "para", "stem", "syn")

    def __init__(self, w: str, res: Resources, lex: dict) -> None:
        self.hash = java_hash(w)
        self.stem = java_hash(res.stemmer.stemWord(w))
        self.function = w in lex["function"]
        self.syn = _synsets(w, lex)
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

    __slots__ = (
        "by_hash", "by_stem", "fw", "hashes", "n", "ngrams", "para", "paths",
        "stems", "syn", "syn_pos", "words",
    )  # fmt: skip

    def __init__(self, words: list[str], lookup) -> None:
        info = [lookup(w) for w in words]
        self.words = words
        self.n = len(words)
        self.hashes = [x.hash for x in info]
        self.stems = [x.stem for x in info]
        self.fw = [x.function for x in info]
        self.syn = [x.syn for x in info]
        self.para = tuple(x.para for x in info)
        self.syn_pos = [(i, s) for i, s in enumerate(self.syn) if s]
        by_hash: dict[int, list[int]] = {}
        by_stem: dict[int, list[int]] = {}
        for i, (h, s) in enumerate(zip(self.hashes, self.stems, strict=True)):
            by_hash.setdefault(h, []).append(i)
            by_stem.setdefault(s, []).append(i)
        self.by_hash = by_hash
        self.by_stem = by_stem
        # paraphrase-table n-grams (word ids) -> start positions
        ngrams: dict[tuple[int, ...], list[int]] = {}
        ids = self.para
        for i in range(self.n):
            if ids[i] < 0:
                continue
            for k in range(i + 1, min(self.n, i + MAX_PHRASE) + 1):
                if ids[k - 1] < 0:
                    break
                ngrams.setdefault(ids[i:k], []).append(i)
        self.ngrams = ngrams
        # paraphrase -> [(position, order at that position, phrase length)]
        self.paths: dict[tuple[int, ...], list[tuple[int, int, int]]] = {}


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


def _align(s1: _Sentence, s2: _Sentence) -> str:
    """Aligns hypothesis ``s1`` with reference ``s2``; the statistics line."""
    n1, n2 = s1.n, s2.n
    h1, h2 = s1.hashes, s2.hashes
    # matches[j]: candidate matches starting at reference word j, as tuples
    # (start2, len2, start1, len1, stage)
    matches: list[list[tuple[int, int, int, int, int]]] = [[] for _ in range(n2)]
    cov1 = [0] * n1
    cov2 = [0] * n2
    identical = n1 == n2 and h1 == h2
    by_hash = s1.by_hash
    for j in range(n2):
        for i in by_hash.get(h2[j], ()):
            matches[j].append((j, 1, i, 1, EXACT))
            cov1[i] += 1
            cov2[j] += 1
    if not identical and n1 and n2:
        by_stem = s1.by_stem
        st2 = s2.stems
        for j in range(n2):
            hj = h2[j]
            for i in by_stem.get(st2[j], ()):
                if h1[i] != hj:
                    matches[j].append((j, 1, i, 1, STEM))
                    cov1[i] += 1
                    cov2[j] += 1
        if s1.syn_pos and s2.syn_pos:
            syn1 = s1.syn_pos
            for j, sj in s2.syn_pos:
                hj = h2[j]
                for i, si in syn1:
                    if h1[i] != hj and not si.isdisjoint(sj):
                        matches[j].append((j, 1, i, 1, SYNONYM))
                        cov1[i] += 1
                        cov2[j] += 1
        _paraphrase(s1, s2, matches, cov1, cov2)
    return _resolve(s1, s2, matches, cov1, cov2)


def _paraphrase(s1, s2, matches, cov1, cov2) -> None:
    # Reference phrases paraphrased in the hypothesis: by reference position, then
    # the phrase's order there, then hypothesis position.
    found = []
    paths2, grams1 = s2.paths, s1.ngrams
    if paths2 and grams1:
        for par in paths2.keys() & grams1.keys():
            starts = grams1[par]
            for j, order, length in paths2[par]:
                for i in starts:
                    found.append((j, order, i, length, len(par)))
        found.sort()
        for j, _, i, length, plen in found:
            matches[j].append((j, length, i, plen, PARAPHRASE))
            for k in range(plen):
                cov1[i + k] += 1
            for k in range(length):
                cov2[j + k] += 1
    # Hypothesis phrases paraphrased in the reference: by hypothesis position, the
    # phrase's order there, then reference position.
    found = []
    paths1, grams2 = s1.paths, s2.ngrams
    if paths1 and grams2:
        for par in paths1.keys() & grams2.keys():
            starts = grams2[par]
            for i, order, length in paths1[par]:
                for j in starts:
                    found.append((i, order, j, length, len(par)))
        found.sort()
        for i, _, j, length, plen in found:
            matches[j].append((j, plen, i, length, PARAPHRASE))
            for k in range(length):
                cov1[i + k] += 1
            for k in range(plen):
                cov2[j + k] += 1


def _resolve(s1, s2, matches, cov1, cov2) -> str:
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
    fw1, fw2 = s1.fw, s2.fw
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
    return " ".join(f"{x}.0" for x in fields)


def _key(p):
    return (-p[0], p[1], p[2])


def _beam(n2, matches, fixed, used1, used2):
    """The jar's beam search. A path is a list
    [weighted matches, chunks, distance, idx, last_end, used1, used2, _, chain]
    where chain links the chosen matches ((match, previous link) or None)."""
    # weighted match count: exact words count 1, others 0.5, truncated per match
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
                            path[0] += mlength + length
                        else:
                            path[0] += (mlength >> 1) + (length >> 1)
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
                    w = path[0] + mlength + length
                else:
                    w = path[0] + (mlength >> 1) + (length >> 1)
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


# --- the scorer -----------------------------------------------------------------------


def _request_parts(hyp: str, ref: str) -> tuple[str, str]:
    """(test, reference) as the jar reads them from ``scorers._score_line``'s line."""
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
    converts the paraphrase table once, ~30 s).

    Args:
        resources: the ``Resources`` to use (default: the process-wide one).
    """

    def __init__(self, resources: Resources | None = None) -> None:
        self._res = resources
        self._closed = False
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], str] = {}
        self._norm: dict[str, tuple[str, ...]] = {}
        self._words: dict[str, _Word] = {}

    def __enter__(self) -> PythonMeteor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._stats.clear()
        self._norm.clear()
        self._words.clear()

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
                    self._stats.clear()
                self._stats.update(zip(todo, self._score_pairs(todo), strict=True))
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
            x = self._words[w] = _Word(w, res, res.lexicon)
        return x

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[str]:
        parts = [_request_parts(h, r) for h, r in pairs]
        texts = list(dict.fromkeys(t for p in parts for t in p))
        sents = {t: _Sentence(list(self._tokens(t)), self._word) for t in texts}
        _add_paths(list(sents.values()), self.resources)
        return [_align(sents[t], sents[r]) for t, r in parts]


def _add_paths(sents: list[_Sentence], res: Resources) -> None:
    """Fills each sentence's ``paths``: the paraphrases (as word-id tuples) of its
    phrases that occur somewhere in this batch, with (position, order, length)."""
    flat = [i for s in sents for i in s.para]
    if not flat:
        return
    a = res.arrays
    ids = np.asarray(flat, dtype=np.int64)
    sent_of = np.repeat(np.arange(len(sents)), [s.n for s in sents])
    offsets = np.zeros(len(sents) + 1, np.int64)
    np.cumsum([s.n for s in sents], out=offsets[1:])
    end = offsets[1:][sent_of]
    pos = np.arange(len(ids))
    keys = np.zeros(len(ids), np.uint64)
    live = ids >= 0
    all_keys, all_pos, all_len = [], [], []
    for k in range(MAX_PHRASE):
        p = pos + k
        live = live & (p < end)
        live[live] &= ids[p[live]] >= 0
        if not live.any():
            break
        keys[live] = keys[live] * HASH_MUL + (ids[p[live]] + 1).astype(np.uint64)
        all_keys.append(keys[live].copy())
        all_pos.append(pos[live])
        all_len.append(np.full(int(live.sum()), k + 1))
    if not all_keys:
        return
    gkeys = np.concatenate(all_keys)
    gpos = np.concatenate(all_pos)
    glen = np.concatenate(all_len)
    batch_grams = np.unique(gkeys)
    pk = a["phrase_keys"]
    lo = np.searchsorted(pk, gkeys, side="left")
    hi = np.searchsorted(pk, gkeys, side="right")
    hit = np.flatnonzero(hi > lo)
    if not len(hit):
        return
    pw, po, pe = a["phrase_words"], a["phrase_offsets"], a["phrase_entries"]
    # distinct phrases hit -> their entries whose paraphrase occurs in the batch
    survivors: dict[int, list[tuple[int, ...]]] = {}
    phrase_of_hit = []
    for h in hit:
        p0, L, found = int(gpos[h]), int(glen[h]), -1
        want = ids[p0 : p0 + L]
        for p in range(int(lo[h]), int(hi[h])):
            if po[p + 1] - po[p] == L and np.array_equal(pw[po[p] : po[p + 1]], want):
                found = p
                break
        phrase_of_hit.append(found)
    distinct = sorted({p for p in phrase_of_hit if p >= 0})
    if distinct:
        starts = pe[distinct, 0]
        stops = pe[distinct, 1]
        counts = stops - starts
        entry = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(
            counts.sum()
        )
        par_keys = a["par_keys"][entry]
        j = np.searchsorted(batch_grams, par_keys)
        j[j == len(batch_grams)] = 0
        keep = batch_grams[j] == par_keys
        owner = np.repeat(np.arange(len(distinct)), counts)
        parw, paro = a["par_words"], a["par_offsets"]
        for p in distinct:
            survivors[p] = []
        for e, o in zip(entry[keep].tolist(), owner[keep].tolist(), strict=True):
            survivors[distinct[o]].append(tuple(parw[paro[e] : paro[e + 1]].tolist()))
    # per sentence and position: phrases by length, entries in file order
    order_at: dict[tuple[int, int], int] = {}
    for h, p in sorted(
        zip(hit.tolist(), phrase_of_hit, strict=True),
        key=lambda x: (gpos[x[0]], glen[x[0]]),
    ):
        if p < 0 or not survivors[p]:
            continue
        g = int(gpos[h])
        si = int(sent_of[g])
        j = g - int(offsets[si])
        L = int(glen[h])
        s = sents[si]
        o = order_at.get((si, j), 0)
        for par in survivors[p]:
            s.paths.setdefault(par, []).append((j, o, L))
            o += 1
        order_at[(si, j)] = o
