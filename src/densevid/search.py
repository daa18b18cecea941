"""Finding events by text: an index of captioned events, searched by a sentence.

An index is a directory:

- ``manifest.json``: format and version, counts, the embedding's dimension, the
  vector index's kind, the densevid version that wrote it;
- ``vectors.faiss``: each event's embedding by the matcher's video tower, in a
  faiss index (exact inner product up to ``FLAT_MAX_EVENTS`` events, an inverted
  file of ``IVF_LISTS_PER_SQRT * sqrt(n)`` lists above, searched ``nprobe`` lists
  deep);
- ``events.sqlite``: video, start, end, caption and score of each event (row id =
  the vector's position), in SQLite;
- ``text/``: a BM25 index of the captions (bm25s: English stop words dropped,
  Snowball stems), whose scores are precomputed per word and event in a sparse
  matrix, so a query costs a few sums however common its words are (SQLite's FTS5
  ranked every matching row, 0.64 s a query at a million events: results.md);
- ``matcher/``: a copy of the matching model, whose text tower embeds queries, so
  the directory is all that searching needs;
- ``frames.npy``, with a ``hierarchical`` matcher only: every event's frame
  vectors (N, n_frames, d) in float16, for the fine word-frame score.

A query is scored both ways: BM25 of its words against the captions, and the
cosine of its embedding with the events' (so it can find an event whose caption
shares none of its words). Each score is scaled to [0, 1] over the candidates
(BM25 divided by the best, the cosine min-max), and the result is
``text_weight * text + (1 - text_weight) * embedding``. With a hierarchical matcher
the embedding's similarity is the mean of the pooled cosine and the fine score
(each query word's best frame, averaged: ``matcher.fine_scores``), computed for the
candidates only: the vector index finds them by the pooled vectors.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Self, overload

import numpy as np

from densevid.errors import DensevidError, plural
from densevid.events import VideoEvents, read_json
from densevid.matcher import (
    MatchingModel,
    event_frames,
    fine_scores,
    load_matcher,
    save_matcher,
)

logger = logging.getLogger(__name__)

INDEX_FORMAT = "densevid-search-index"
INDEX_VERSION = 2  # 1: captions in SQLite FTS5
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
EVENTS_DB = "events.sqlite"
TEXT_DIR = "text"
STEMMER = "english"  # PyStemmer's Snowball, as densevid's METEOR uses
MATCHER_DIR = "matcher"
FRAMES = "frames.npy"
FLAT_MAX_EVENTS = 200_000  # exact search below this many events, IVF above
IVF_LISTS_PER_SQRT = 4  # faiss' guideline: 4 sqrt(n) to 16 sqrt(n) lists
IVF_TRAIN_PER_LIST = 64  # k-means training points per list (faiss warns below 39)
WORD = re.compile(r"\w+")


def require_faiss() -> Any:
    """faiss, or one line saying how to install it."""
    try:
        import faiss
    except ImportError as e:
        raise DensevidError(
            "search needs faiss: pip install 'densevid[search]' (faiss-cpu)"
        ) from e
    return faiss


def require_bm25s() -> Any:
    """bm25s, or one line saying how to install it."""
    try:
        import bm25s
    except ImportError as e:
        raise DensevidError(
            "search needs bm25s: pip install 'densevid[search]' (bm25s)"
        ) from e
    return bm25s


def tokenize_captions(bm25s: Any, texts: list[str]) -> Any:
    """Captions or queries as bm25s tokens: lower case, English stop words out,
    Snowball stems."""
    import Stemmer

    return bm25s.tokenize(
        texts, stopwords="en", stemmer=Stemmer.Stemmer(STEMMER), show_progress=False
    )


@dataclass(frozen=True)
class SearchOptions:
    """How a query is answered.

    Attributes:
        k: events returned.
        text_weight: weight of the captions' BM25 score against the embedding's
            (1: text only, 0: embedding only).
        n_candidates: events taken from each of the two rankings before they are
            combined (at least ``k``).
        nprobe: inverted lists searched in an IVF index (more: slower, closer to
            exact); an exact index ignores it.
    """

    k: int = 10
    text_weight: float = 0.5
    n_candidates: int = 100
    nprobe: int = 32

    def verify(self) -> Self:
        if self.k < 1:
            raise DensevidError(f"search: k must be >= 1, got {self.k}")
        if not 0 <= self.text_weight <= 1:
            raise DensevidError(
                f"search: text_weight must be in [0, 1], got {self.text_weight}"
            )
        if self.n_candidates < 1 or self.nprobe < 1:
            raise DensevidError("search: n_candidates and nprobe must be >= 1")
        return self


@dataclass(frozen=True)
class Hit:
    """One event found: where it is, what its caption says, and its scores."""

    video_id: str
    start: float
    end: float
    caption: str
    score: float  # the combined score
    text_score: float  # BM25 scaled to [0, 1] (0: no query word in the caption)
    embedding_score: float  # the cosine, min-max scaled over the candidates
    # the raw similarity of query and event: the embeddings' cosine (with a
    # hierarchical matcher, its mean with the fine word-frame score)
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Hit:
        return cls(**dict(d))


def query_words(query: str) -> list[str]:
    """The words of a query (letters and digits), lower-cased; a query without
    any is an error."""
    if not isinstance(query, str) or not query.strip():
        raise DensevidError("search: the query is empty; give a sentence to look for")
    words = WORD.findall(query.lower())
    if not words:
        raise DensevidError(f"search: the query {query!r} has no words")
    return words


class SearchIndex:
    """An open index (``open_index``): ``search(query)`` returns the best events."""

    def __init__(self, path: Path, manifest: dict[str, Any], matcher: MatchingModel):
        faiss = require_faiss()
        self.path = path
        self.manifest = manifest
        self.matcher = matcher
        try:
            self.vectors = faiss.read_index(str(path / VECTORS))
        except RuntimeError as e:
            raise DensevidError(f"{path / VECTORS}: unreadable vector index") from e
        if self.vectors.ntotal != manifest["n_events"]:
            raise DensevidError(
                f"{path}: {VECTORS} holds {self.vectors.ntotal} vectors but the "
                f"manifest says {manifest['n_events']} events; rebuild the index"
            )
        self.ivf = None
        if manifest["vector_index"] == "ivf":
            self.ivf = faiss.extract_index_ivf(self.vectors)
            self.ivf.make_direct_map()  # reconstruct() of a text-only candidate
        self.frames = None
        if manifest.get("hierarchical"):
            self.frames = np.load(path / FRAMES, mmap_mode="r")  # (N, F, d)
        self.bm25s = require_bm25s()
        self.text = None
        if manifest["text"]:
            self.text = self.bm25s.BM25.load(str(path / TEXT_DIR), mmap=True)
        self.db = sqlite3.connect(
            f"file:{path / EVENTS_DB}?mode=ro", uri=True, check_same_thread=False
        )

    def __len__(self) -> int:
        return int(self.manifest["n_events"])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @overload
    def search(
        self, query: str, options: SearchOptions | None = None, **kw: Any
    ) -> list[Hit]: ...
    @overload
    def search(
        self, query: Sequence[str], options: SearchOptions | None = None, **kw: Any
    ) -> list[list[Hit]]: ...
    def search(self, query, options=None, **kw):  # type: ignore[no-untyped-def]
        """The best-matching events of one query (a list of ``Hit``, best first),
        or of each of several queries (a list of such lists).

        Options come as ``SearchOptions`` or as its fields' keywords (``k=5``).
        """
        options = replace(options or SearchOptions(), **kw).verify()
        if isinstance(query, str):
            return self._search_many([query], options)[0]
        return self._search_many(list(query), options)

    def _search_many(self, queries: list[str], o: SearchOptions) -> list[list[Hit]]:
        for q in queries:
            query_words(q)
        n_cand = max(o.n_candidates, o.k)
        q_vecs = self.matcher.embed_text(queries)  # (Q, d)
        emb_ids = np.zeros((len(queries), 0), np.int64)
        if o.text_weight < 1:
            if self.ivf is not None:
                self.ivf.nprobe = o.nprobe
            _, emb_ids = self.vectors.search(q_vecs, min(n_cand, len(self)))
        out = []
        for i, q in enumerate(queries):
            text = self._bm25(q, n_cand) if o.text_weight > 0 else {}
            ids = [int(j) for j in emb_ids[i] if j >= 0]
            seen = set(ids)
            ids += [j for j in text if j not in seen]
            out.append(self._rank(ids, q, q_vecs[i], text, o))
        return out

    def _bm25(self, query: str, limit: int) -> dict[int, float]:
        """Row id -> BM25 of the query's words (any of them) against the captions,
        for the best ``limit`` events with a word of the query."""
        tokens = tokenize_captions(self.bm25s, [query])
        if self.text is None or not tokens.ids or not tokens.ids[0]:
            return {}  # no caption, or no query word, that is not a stop word
        docs, scores = self.text.retrieve(
            tokens, k=min(limit, len(self)), show_progress=False, n_threads=1
        )
        return {
            int(d): float(v) for d, v in zip(docs[0], scores[0], strict=True) if v > 0
        }

    def _rank(
        self,
        ids: list[int],
        query: str,
        q: np.ndarray,
        text: dict[int, float],
        o: SearchOptions,
    ) -> list[Hit]:
        if not ids:
            return []
        vecs = self.vectors.reconstruct_batch(np.asarray(ids, np.int64))  # (N, d)
        cos = vecs @ q  # (N,)
        if self.frames is not None:
            import torch

            tokens = torch.from_numpy(self.matcher.embed_tokens(query))[None]
            order = np.argsort(ids)  # a memory map reads rows in order fastest
            frames = np.empty((len(ids), *self.frames.shape[1:]), np.float32)
            frames[order] = self.frames[np.asarray(ids)[order]]
            fine = fine_scores(
                tokens,
                torch.ones(tokens.shape[:2], dtype=torch.bool),
                torch.from_numpy(frames),
            )[0].numpy()  # (N,)
            cos = (cos + fine) / 2
        span = float(cos.max() - cos.min())
        emb = (cos - cos.min()) / span if span > 0 else np.ones_like(cos)
        best_text = max(text.values(), default=0.0)
        txt = np.array([text.get(j, 0.0) for j in ids]) / (best_text or 1.0)
        score = o.text_weight * txt + (1 - o.text_weight) * emb
        order = np.argsort(-score, kind="stable")[: o.k]
        keep = [ids[j] for j in order]
        rows = {
            int(r[0]): r[1:]
            for r in self.db.execute(
                "SELECT id, video, start, end, caption FROM events WHERE id IN "
                f"({','.join('?' * len(keep))})",
                keep,
            )
        }
        return [
            Hit(
                video_id=rows[ids[j]][0],
                start=rows[ids[j]][1],
                end=rows[ids[j]][2],
                caption=rows[ids[j]][3],
                score=float(score[j]),
                text_score=float(txt[j]),
                embedding_score=float(emb[j]),
                cosine=float(cos[j]),
            )
            for j in order
        ]


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """An index directory's manifest, checked: one line when the directory is
    missing, is no index, or was written by another version of the format."""
    path = Path(path)
    if not path.exists():
        raise DensevidError(
            f"{path}: no such search index (build one with densevid index)"
        )
    if not (path / MANIFEST).is_file():
        raise DensevidError(
            f"{path}: not a search index (no {MANIFEST}; build one with densevid index)"
        )
    manifest = read_json(path / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT:
        raise DensevidError(f"{path / MANIFEST}: not a densevid search index manifest")
    version = manifest.get("version")
    if version != INDEX_VERSION:
        raise DensevidError(
            f"{path}: index format version {version}, but this densevid reads "
            f"version {INDEX_VERSION}; rebuild it with densevid index"
        )
    needed = [VECTORS, EVENTS_DB, MATCHER_DIR] + [TEXT_DIR] * bool(manifest.get("text"))
    for name in needed:
        if not (path / name).exists():
            raise DensevidError(f"{path}: incomplete index, {name} is missing")
    return manifest


def open_index(path: str | os.PathLike, *, device: str | None = None) -> SearchIndex:
    """Opens an index that ``build_index`` (``densevid index``) wrote."""
    path = Path(path)
    manifest = read_manifest(path)
    matcher = load_matcher(path / MATCHER_DIR, device=device)
    if matcher.config.d_embed != manifest["dim"]:
        raise DensevidError(
            f"{path}: the matcher embeds in {matcher.config.d_embed} dimensions but "
            f"the vectors have {manifest['dim']}; rebuild the index"
        )
    return SearchIndex(path, manifest, matcher)


def embed_videos(
    matcher: MatchingModel,
    videos: Iterable[VideoEvents],
    features: str | os.PathLike,
    batch_events: int = 512,
) -> Iterator[tuple[VideoEvents, np.ndarray, np.ndarray | None]]:
    """Each video with events, its events' embeddings (E, d_embed) from the
    matcher's video tower over ``features`` (its stream, as extracted) and, for a
    hierarchical matcher, their frame vectors (E, n_frames, d_embed); else None.
    The events of consecutive videos go through the tower together, about
    ``batch_events`` at a time (one video's few events would leave it idle)."""
    from densevid.features.cache import load_features

    cfg = matcher.config
    pending: list[tuple[VideoEvents, np.ndarray, np.ndarray]] = []

    def flush() -> Iterator[tuple[VideoEvents, np.ndarray, np.ndarray | None]]:
        frames = np.concatenate([f for _, f, _ in pending])
        lengths = np.concatenate([n for _, _, n in pending])
        vectors = matcher.embed_events(frames, lengths, batch_events)
        per_frame = None
        if cfg.hierarchical:
            per_frame = matcher.embed_events(
                frames, lengths, batch_events, per_frame=True
            )
        at = 0
        for video, f, _ in pending:
            rows = slice(at, at + len(f))
            yield video, vectors[rows], None if per_frame is None else per_frame[rows]
            at += len(f)
        pending.clear()

    n_pending = 0
    for video in videos:
        if not video.events:
            continue
        array, meta = load_features(features, cfg.features, video.video_id)
        duration = video.duration or float(meta.get("duration") or 0.0)
        if duration <= 0:
            raise DensevidError(
                f"{video.video_id}: no duration in the predictions or the features"
            )
        spans = [(e.start, e.end) for e in video.events]
        frames = event_frames(
            array, meta, duration, spans, cfg, f"{features}/{cfg.features}"
        )
        lengths = np.array([e.end - e.start for e in video.events], np.float32)
        pending.append((video, frames, lengths))
        n_pending += len(lengths)
        if n_pending >= batch_events:
            yield from flush()
            n_pending = 0
    if pending:
        yield from flush()


def build_index(
    matcher: MatchingModel,
    videos: Iterable[VideoEvents],
    features: str | os.PathLike,
    out: str | os.PathLike,
    *,
    vector_index: str = "auto",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Embeds every event of ``videos`` (predictions or references) and writes a
    search index to ``out``.

    Args:
        matcher: the matching model (``load_matcher``); copied into the index.
        videos: the events to index (``load_submission`` or ``caption`` output).
        features: the FEATURES directory holding the matcher's stream.
        out: the index directory to write (written beside and renamed into place).
        vector_index: "flat" (exact), "ivf" (approximate) or "auto" (flat up to
            ``FLAT_MAX_EVENTS`` events).
        overwrite: replace an existing index at ``out``.

    Returns:
        the manifest written.
    """

    def rows() -> Iterator[tuple[VideoEvents, np.ndarray, np.ndarray | None]]:
        yield from embed_videos(matcher, videos, features)

    return write_index(
        matcher, rows(), out, vector_index=vector_index, overwrite=overwrite
    )


def write_index(
    matcher: MatchingModel,
    rows: Iterable[tuple[VideoEvents, np.ndarray, np.ndarray | None]],
    out: str | os.PathLike,
    *,
    vector_index: str = "auto",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Writes an index of videos' events with their embeddings (``(E, d_embed)``
    float32 unit vectors per video) and, for a hierarchical matcher, their frame
    vectors (``(E, n_frames, d_embed)``; else None), as ``build_index`` does after
    embedding."""
    faiss = require_faiss()
    bm25s = require_bm25s()
    from densevid import __version__

    if vector_index not in ("auto", "flat", "ivf"):
        raise DensevidError("index: vector_index must be auto, flat or ivf")
    out = Path(out)
    if out.exists() and not overwrite:
        raise DensevidError(f"{out}: exists; give --overwrite to replace it")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        db = sqlite3.connect(tmp / EVENTS_DB)
        db.execute(
            "CREATE TABLE events(id INTEGER PRIMARY KEY, video TEXT, start REAL, "
            "end REAL, caption TEXT, score REAL)"
        )
        chunks: list[np.ndarray] = []
        frame_chunks: list[np.ndarray] = []
        captions: list[str] = []
        hierarchical = matcher.config.hierarchical
        n, n_videos = 0, 0
        for video, vecs, per_frame in rows:
            if len(vecs) != len(video.events):
                raise DensevidError(f"{video.video_id}: one vector per event needed")
            if hierarchical:
                assert per_frame is not None and len(per_frame) == len(vecs)
                frame_chunks.append(np.asarray(per_frame, np.float16))
            db.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (n + i, video.video_id, e.start, e.end, e.text, e.score)
                    for i, e in enumerate(video.events)
                ],
            )
            chunks.append(np.asarray(vecs, np.float32))
            captions += [e.text for e in video.events]
            n += len(vecs)
            n_videos += 1
        if n == 0:
            raise DensevidError("index: no events to index")
        db.commit()
        db.close()
        tokens = tokenize_captions(bm25s, captions)
        has_text = any(tokens.ids)  # else no caption has a word: nothing to rank
        if has_text:
            text = bm25s.BM25()
            text.index(tokens, show_progress=False)
            text.save(str(tmp / TEXT_DIR))
        del captions, tokens
        vectors = np.ascontiguousarray(np.concatenate(chunks))
        del chunks
        kind = vector_index
        if kind == "auto":
            kind = "flat" if n <= FLAT_MAX_EVENTS else "ivf"
        index = make_vector_index(faiss, vectors, kind)
        faiss.write_index(index, str(tmp / VECTORS))
        if hierarchical:
            np.save(tmp / FRAMES, np.concatenate(frame_chunks), allow_pickle=False)
            del frame_chunks
        save_matcher(matcher, tmp / MATCHER_DIR)
        manifest = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "densevid": __version__,
            "n_events": n,
            "n_videos": n_videos,
            "dim": int(vectors.shape[1]),
            "vector_index": kind,
            "n_lists": int(getattr(index, "nlist", 0)),
            "features": matcher.config.features,
            "hierarchical": hierarchical,
            "text": has_text,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.debug(
        "%s: %s of %s (%s index)",
        out,
        plural(n, "event"),
        plural(n_videos, "video"),
        kind,
    )
    return manifest


def make_vector_index(faiss: Any, vectors: np.ndarray, kind: str) -> Any:
    """A faiss inner-product index holding ``vectors`` (N, d): exact ("flat"), or
    an inverted file of ``IVF_LISTS_PER_SQRT * sqrt(N)`` lists ("ivf")."""
    n, d = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    else:
        n_lists = max(1, min(int(IVF_LISTS_PER_SQRT * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(d), d, n_lists, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(0)
        n_train = min(n, n_lists * IVF_TRAIN_PER_LIST)
        index.train(vectors[rng.choice(n, n_train, replace=False)])
    index.add(vectors)
    return index


def read_videos_events(paths: Sequence[str | os.PathLike]) -> list[VideoEvents]:
    """The events of prediction files (submissions: ``densevid predict``'s, or
    ``caption``'s JSON) or annotation files (the references), in file order; a
    video in two files is an error."""
    from densevid.events import load_annotations, load_submission

    out: dict[str, VideoEvents] = {}
    for path in paths:
        data = read_json(path)
        if isinstance(data, dict) and "results" in data:
            videos = load_submission(path, max_per_video=None)
        else:
            videos = load_annotations(path)
        for vid, video in videos.items():
            if vid in out:
                raise DensevidError(f"{path}: video {vid} is in an earlier file too")
            out[vid] = video
    return list(out.values())


def index_videos(
    captioner: Any,
    matcher: MatchingModel,
    videos: Sequence[str | os.PathLike],
    features: str | os.PathLike,
    out: str | os.PathLike,
    *,
    vector_index: str = "auto",
    overwrite: bool = False,
    verbose: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Captions video files and indexes their events, as ``densevid caption``
    and ``densevid extract`` would: the matcher's stream is extracted into
    ``features`` with the options it was trained on (what is there is kept), and
    the captioner reads it from there when it reads the same stream.

    Returns:
        the manifest, and one line per video that failed.
    """
    import torch

    from densevid.caption import caption
    from densevid.features.extract import extract_features
    from densevid.files import find_videos

    problems: dict[str, str] = {}
    paths = find_videos(videos, problems=problems)
    lines = [f"{p}: {m}" for p, m in problems.items()]
    if not paths:
        raise DensevidError("index: no video to caption")
    cfg = matcher.config
    report = extract_features(
        paths,
        features,
        [cfg.features],
        options={cfg.features: cfg.extractor_options.get(cfg.features, {})},
        verbose=verbose,
    )
    bad = report.failed_videos
    lines += [message for _, _, message in report.failed]
    done: list[VideoEvents] = []
    with torch.inference_mode():
        for path in paths:
            if path.stem in bad:
                continue
            try:
                done.append(caption(captioner, path, features_dir=features))
            except DensevidError as e:
                lines.append(f"{path}: {e}")
    if not done:
        raise DensevidError("index: every video failed: " + "; ".join(lines[:3]))
    manifest = build_index(
        matcher, done, features, out, vector_index=vector_index, overwrite=overwrite
    )
    return manifest, lines
