"""Search by text: the matcher, the index, the queries, the CLI and its errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from densevid.cli import main
from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents, save_annotations, save_submission
from densevid.features.cache import save_features, save_speech
from densevid.matcher import MatcherConfig, MatchingModel, load_matcher
from densevid.metrics.retrieval import retrieval_recall

faiss = pytest.importorskip("faiss")

from densevid.search import (  # noqa: E402
    SearchOptions,
    build_index,
    embed_videos,
    open_index,
    read_videos_events,
    write_index,
)
from densevid.training.matcher import MatcherTrainConfig, train_matcher  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS, DIM = 32, 6
# channel k of the frames lights up while an event of caption k runs
CAPTIONS = ["A red ball bounces.", "A blue box spins.", "A green star blinks."]
TINY = {
    "features": "pixels",
    "blocks": [],
    "n_frames": 4,
    "d_model": 16,
    "n_heads": 2,
    "d_embed": 16,
    "max_tokens": 12,
    "dropout": 0.0,
}


def make_corpus(root: Path, n_videos: int = 12, seed: int = 0) -> Path:
    """Videos of two events each, of two of the three kinds; a narration line
    over each first event."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(n_videos):
        duration = 20.0
        kinds = [i % 3, (i + 1) % 3]
        spans = [(1.0 + rng.uniform(0, 2), 8.0), (11.0, 16.0 + rng.uniform(0, 3))]
        times = (np.arange(ROWS) + 0.5) * duration / ROWS
        x = rng.normal(0, 0.1, (ROWS, DIM)).astype(np.float32)
        for k, (s, e) in zip(kinds, spans, strict=True):
            x[(times >= s) & (times <= e), k] += 1.0
        save_features(
            root / "features",
            "pixels",
            f"v{i}",
            x,
            {"fps": ROWS / duration, "duration": duration, "timestamps": times},
        )
        save_speech(
            root / "features",
            "subtitles",
            f"v{i}",
            [{"start": spans[0][0], "end": spans[0][1], "text": "look at that"}],
        )
        events = tuple(
            Event(s, e, CAPTIONS[k]) for k, (s, e) in zip(kinds, spans, strict=True)
        )
        videos.append(VideoEvents(f"v{i}", events, duration))
    save_annotations(videos, root / "train.json")
    save_annotations(videos[:6], root / "val.json")
    return root


def tiny_config(root: Path, out: str, **kw) -> MatcherTrainConfig:
    base = dict(
        train_annotations=str(root / "train.json"),
        val_annotations=str(root / "val.json"),
        features=str(root / "features"),
        output_dir=str(root / out),
        model=dict(TINY),
        vocab_size=60,
        max_steps=60,
        batch_size=8,
        lr=5e-3,
        warmup_steps=5,
        eval_every=0,
        save_every=30,
        log_every=0,
        seed=0,
        device="cpu",
    )
    base.update(kw)
    return MatcherTrainConfig.from_dict(base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def matcher_dir(corpus) -> Path:
    summary = train_matcher(tiny_config(corpus, "matcher"))
    assert summary["val"]["loss"] < 2.0  # ln(8) = 2.08 is chance for a batch of 8
    return corpus / "matcher" / "best"


def test_training_learns_and_resumes_with_its_own_checkpoints(corpus, matcher_dir):
    log = [json.loads(x) for x in (corpus / "matcher" / "log.jsonl").open()]
    assert log[-1]["val"]["R@1"] > 0.6  # three kinds of event: 1/3 by chance
    more = train_matcher(tiny_config(corpus, "matcher_more", max_steps=4))
    assert more["resumed_from"] is None
    resumed = train_matcher(tiny_config(corpus, "matcher_more", max_steps=6))
    assert resumed["resumed_from"] == 4 and resumed["step"] == 6
    model = load_matcher(corpus / "matcher_more" / "last")
    assert model.config.input_dim == DIM and model.tokenizer is not None


def test_index_search_and_reopen_give_the_same_events(corpus, matcher_dir, tmp_path):
    matcher = load_matcher(matcher_dir)
    videos = read_videos_events([corpus / "train.json"])
    manifest = build_index(matcher, videos, corpus / "features", tmp_path / "ix")
    assert manifest["n_events"] == 24 and manifest["vector_index"] == "flat"
    with open_index(tmp_path / "ix") as index:
        hits = index.search("a red ball bounces", k=5)
        many = index.search(["a red ball bounces", "blue box"], k=5)
    assert len(hits) == 5 and hits[0].caption == CAPTIONS[0]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    def where(found):
        return [(h.video_id, h.start, h.end) for h in found]

    # a batch pads the queries' tokens: the same events, cosines within float error
    assert where(many[0]) == where(hits) and many[1][0].caption == CAPTIONS[1]
    assert [h.cosine for h in many[0]] == pytest.approx([h.cosine for h in hits])
    with open_index(tmp_path / "ix") as again:
        assert again.search("a red ball bounces", k=5) == hits
    with pytest.raises(DensevidError, match="exists"):
        build_index(matcher, videos, corpus / "features", tmp_path / "ix")


def test_the_embedding_finds_an_event_whose_caption_lacks_the_words(
    corpus, matcher_dir, tmp_path
):
    """Captions that say nothing of the picture: BM25 finds nothing, the joint
    embedding finds the event by its frames."""
    videos = [
        replace(v, events=tuple(replace(e, text="zzz qqq") for e in v.events))
        for v in read_videos_events([corpus / "train.json"])
    ]
    build_index(load_matcher(matcher_dir), videos, corpus / "features", tmp_path / "x")
    truth = {
        (v.video_id, e.start): e.text
        for v in read_videos_events([corpus / "train.json"])
        for e in v.events
    }
    with open_index(tmp_path / "x") as index:
        assert index.search("a red ball bounces", text_weight=1.0) == []
        assert index.search("the", text_weight=1.0) == []  # a stop word only
        for w in (0.0, 0.5):
            hits = index.search("a red ball bounces", k=4, text_weight=w)
            found = [truth[(h.video_id, h.start)] for h in hits]
            assert found == [CAPTIONS[0]] * 4, w


def test_hierarchical_matching_trains_indexes_frames_and_finds_by_them(
    corpus, tmp_path
):
    model = dict(TINY, hierarchical=True)
    summary = train_matcher(tiny_config(corpus, "fine", model=model))
    assert summary["val"]["loss"] < 2.0
    matcher = load_matcher(corpus / "fine" / "best")
    videos = [
        replace(v, events=tuple(replace(e, text="zzz qqq") for e in v.events))
        for v in read_videos_events([corpus / "train.json"])
    ]
    manifest = build_index(matcher, videos, corpus / "features", tmp_path / "x")
    assert manifest["hierarchical"]
    frames = np.load(tmp_path / "x" / "frames.npy")
    assert frames.shape == (24, TINY["n_frames"], TINY["d_embed"])
    truth = {
        (v.video_id, e.start): e.text
        for v in read_videos_events([corpus / "train.json"])
        for e in v.events
    }
    with open_index(tmp_path / "x") as index:
        hits = index.search("a red ball bounces", k=4, text_weight=0.0)
    assert [truth[(h.video_id, h.start)] for h in hits] == [CAPTIONS[0]] * 4


def test_events_embedded_across_videos_equal_each_video_alone(corpus, matcher_dir):
    matcher = load_matcher(matcher_dir)
    videos = read_videos_events([corpus / "train.json"])
    alone = list(embed_videos(matcher, videos, corpus / "features", batch_events=1))
    together = list(embed_videos(matcher, videos, corpus / "features", 5))
    assert [v.video_id for v, _, _ in together] == [v.video_id for v, _, _ in alone]
    assert len(alone) == len([v for v in videos if v.events]) > 2
    for (_, a, _), (video, b, _) in zip(alone, together, strict=True):
        assert b.shape == (len(video.events), matcher.config.d_embed)
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fine_scores_take_each_words_best_frame_and_average():
    import torch

    from densevid.matcher import fine_scores

    tokens = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])  # (1, 3, 2)
    mask = torch.tensor([[True, True, False]])  # the third token is padding
    frames = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [0.0, -1.0]]])
    got = fine_scores(tokens, mask, frames)  # (1, 2)
    # event 0: word 1 best at frame 0 (1.0), word 2 at frame 1 (0.8)
    # event 1: word 1 best 0.0, word 2 best 1.0
    assert got[0].tolist() == pytest.approx([0.9, 0.5])


def test_an_index_of_captions_without_words_searches_by_embedding(
    corpus, matcher_dir, tmp_path
):
    videos = [
        replace(v, events=tuple(replace(e, text="") for e in v.events))
        for v in read_videos_events([corpus / "val.json"])
    ]
    manifest = build_index(
        load_matcher(matcher_dir), videos, corpus / "features", tmp_path / "x"
    )
    assert not manifest["text"]
    with open_index(tmp_path / "x") as index:
        assert len(index.search("a red ball bounces", k=3)) == 3
        assert index.search("a red ball bounces", text_weight=1.0) == []


def test_ivf_index_searched_fully_equals_the_exact_one(matcher_dir, tmp_path):
    matcher = load_matcher(matcher_dir)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(2000, matcher.config.d_embed)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [
        (VideoEvents(f"v{i}", (Event(0.0, 1.0, f"e {i}"),), 5.0), vecs[i : i + 1], None)
        for i in range(len(vecs))
    ]
    flat = write_index(matcher, rows, tmp_path / "flat", vector_index="flat")
    ivf = write_index(matcher, rows, tmp_path / "ivf", vector_index="ivf")
    assert flat["vector_index"] == "flat" and ivf["n_lists"] > 1
    options = SearchOptions(k=10, text_weight=0.0, nprobe=ivf["n_lists"])
    with open_index(tmp_path / "flat") as a, open_index(tmp_path / "ivf") as b:
        assert a.search("event", options) == b.search("event", options)


def test_the_commands_index_and_search(corpus, matcher_dir, tmp_path, capsys):
    preds = tmp_path / "preds.json"
    save_submission(read_videos_events([corpus / "val.json"]), preds)
    ix = tmp_path / "ix"
    args = ["index", str(preds), "--features", str(corpus / "features")]
    assert main([*args, "--matcher", str(matcher_dir), "-o", str(ix)]) == 0
    assert "12 events of 6 videos (flat vector index)" in capsys.readouterr().out
    assert main(["search", str(ix), "blue box spins", "-k", "3", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["caption"] == CAPTIONS[1]
    assert main(["search", str(ix), "blue box spins", "-k", "1"]) == 0
    assert "A blue box spins." in capsys.readouterr().out
    assert main([*args, "--matcher", str(matcher_dir), "-o", str(ix)]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "{missing}", "a ball"], "no such search index"),
        (["search", "{ix}", "   "], "the query is empty"),
        (["search", "{ix}", "?!"], "has no words"),
        (["search", "{ix}", "a ball", "-k", "0"], "k must be >= 1"),
        (["search", "{ix}", "a ball", "--text-weight", "2"], "text_weight"),
        (["search", "{old}", "a ball"], "format version 0"),
        (["search", "{empty}", "a ball"], "not a search index"),
        (["index", "{preds}", "--features", "{features}", "--matcher", "{empty}",
          "-o", "{new}"], "not a matcher checkpoint"),
    ],
)  # fmt: skip
def test_a_bad_query_or_index_is_one_error_line(
    corpus, matcher_dir, tmp_path, capsys, argv, message
):
    ix = tmp_path / "ix"
    build_index(
        load_matcher(matcher_dir),
        read_videos_events([corpus / "val.json"]),
        corpus / "features",
        ix,
    )
    old = tmp_path / "old"
    build_index(
        load_matcher(matcher_dir),
        read_videos_events([corpus / "val.json"]),
        corpus / "features",
        old,
    )
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps(dict(manifest, version=0)))
    (tmp_path / "empty").mkdir()
    names = dict(
        missing=tmp_path / "nope",
        ix=ix,
        old=old,
        empty=tmp_path / "empty",
        preds=corpus / "val.json",
        features=corpus / "features",
        new=tmp_path / "new",
    )
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_captioning_checkpoint_is_not_a_matcher(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"d_model": 8}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(DensevidError, match="another kind"):
        load_matcher(tmp_path)


def test_narration_pairs_join_the_training_pairs(corpus):
    from densevid.training.matcher import load_pairs

    videos = read_videos_events([corpus / "val.json"])
    config = MatcherConfig(**{**TINY, "input_dim": DIM})
    only, _ = load_pairs({v.video_id: v for v in videos}, corpus / "features", config)
    both, options = load_pairs(
        {v.video_id: v for v in videos}, corpus / "features", config, "subtitles"
    )
    assert len(only) == 12 and len(both) == 18
    assert both.frames.shape == (18, 4, DIM) and "look at that" in both.texts
    assert "pixels" in options


def test_contrastive_loss_is_clips_with_repeated_captions_as_matches():
    import torch
    import torch.nn.functional as F

    from densevid.matcher import contrastive_loss

    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    t = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    scale = torch.tensor(7.0)
    logits = scale * v @ t.T
    labels = torch.arange(5)
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert float(contrastive_loss(v, t, labels, scale)) == pytest.approx(float(clip))
    # pairs 0 and 1 say the same: each of the two is half the target of either
    groups = torch.tensor([0, 0, 1, 2, 3])
    lv, lt = logits.log_softmax(1).numpy(), logits.T.log_softmax(1).numpy()
    want = [[0.5, 0.5, 0, 0, 0]] * 2 + np.eye(5)[2:].tolist()
    ref = -(np.array(want) * lv).sum(1).mean() - (np.array(want) * lt).sum(1).mean()
    got = float(contrastive_loss(v, t, groups, scale))
    assert got == pytest.approx(ref / 2, rel=1e-5)


def test_a_model_embeds_unit_vectors_of_its_dimension():
    import torch

    config = MatcherConfig(**{**TINY, "input_dim": DIM, "vocab_size": 30})
    model = MatchingModel(config)
    frames = np.random.default_rng(0).normal(size=(3, 4, DIM)).astype(np.float32)
    out = model.embed_events(frames, np.ones(3))
    assert out.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    per_frame = model.embed_events(frames, np.ones(3), per_frame=True)
    assert per_frame.shape == (3, 4, 16)
    np.testing.assert_allclose(np.linalg.norm(per_frame, axis=2), 1.0, rtol=1e-5)
    fine = MatchingModel(replace(config, hierarchical=True)).eval()
    ids = torch.tensor([[3, 4, 5, 0]])
    got = fine(torch.from_numpy(frames[:1]), torch.ones(1), ids, ids > 0)
    for name in ("video", "text", "frames", "tokens"):
        norms = got[name].norm(dim=-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5), name


@pytest.mark.parametrize(
    "ranking, target, expected",
    [
        # the target's event first: every recall 1
        ([("a", 0, 10)], ("a", 0, 10), {"video_R@1": 1, "event_R@1": 1}),
        # right video, event off by more than tIoU 0.5: the video found, the event not
        ([("a", 0, 10)], ("a", 6, 16), {"video_R@1": 1, "event_R@10": 0}),
        # two events of video b before a: a is the 2nd video, its event the 3rd
        (
            [("b", 0, 1), ("b", 2, 3), ("a", 0, 10)],
            ("a", 1, 10),
            {"video_R@1": 0, "video_R@5": 1, "event_R@1": 0, "event_R@5": 1},
        ),
        ([], ("a", 0, 1), {"video_R@10": 0, "event_R@10": 0}),
    ],
)
def test_retrieval_recall(ranking, target, expected):
    got = retrieval_recall([ranking], [target])
    for key, value in expected.items():
        assert got[key] == value, key


def test_narration_links_name_the_events_the_cues_paraphrase():
    from densevid.synth.dataset import PRESETS, video_seed
    from densevid.synth.language import NARRATION, narration, narration_links
    from densevid.synth.world import plan_scene

    for index in range(5):
        seeds = video_seed(0, "test", index).spawn(4)
        scene = plan_scene(np.random.default_rng(seeds[0]), PRESETS["default"])
        links = narration_links(scene, np.random.default_rng(seeds[2]))
        cues = narration(scene, np.random.default_rng(seeds[2]))
        assert [c[:3] for c in links] == cues
        for _, _, text, action in links:
            if action is None:
                continue
            kind = scene.actions[action].kind
            templates = [t.split("{")[0] for t in NARRATION[kind]]
            assert any(text.startswith(t) for t in templates), (text, kind)


def test_index_captions_videos_and_extracts_the_matchers_stream(
    tmp_path, monkeypatch, capsys
):
    """Videos in: the matcher's stream extracted into --features with its options,
    each video captioned (here a stand-in captioner), a broken file one line."""
    import torch

    import densevid.caption
    from densevid.features import get_extractor
    from densevid.matcher import save_matcher
    from densevid.text import train_tokenizer
    from test_features_extract import make_video

    pixels = {"fps": 2.0, "n_hues": 0}
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        make_video(videos / f"{name}.mp4", 3.0, audio_hz=None)
    (videos / "broken.mp4").write_bytes(b"not a video")
    dim = get_extractor("pixels", **pixels)(videos / "a.mp4").array.shape[1]
    tok = train_tokenizer(["a red square moves right"] * 4, vocab_size=60)
    config = MatcherConfig(
        **{**TINY, "input_dim": dim, "vocab_size": len(tok)},
        extractor_options={"pixels": pixels},
    )
    torch.manual_seed(0)
    matcher = MatchingModel(config)
    matcher.tokenizer = tok
    save_matcher(matcher, tmp_path / "matcher")

    def fake_caption(model, path, options=None, *, features_dir=None, **kw):
        assert Path(features_dir, "pixels", f"{Path(path).stem}.npy").is_file()
        return VideoEvents(
            Path(path).stem, (Event(0.5, 2.5, "A red square moves right."),), 3.0
        )

    monkeypatch.setattr(densevid.caption, "caption", fake_caption)
    feats, ix = tmp_path / "feats", tmp_path / "ix"
    argv = ["-q", "index", str(videos), "--features", str(feats)]
    code = main([*argv, "--matcher", str(tmp_path / "matcher"), "-o", str(ix)])
    captured = capsys.readouterr()
    assert code == 1  # one video failed, the others were indexed
    assert "2 events of 2 videos" in captured.out
    assert "broken.mp4" in captured.err
    meta = json.loads((feats / "pixels" / "a.json").read_text())
    assert meta["config"]["n_hues"] == 0
    with open_index(ix) as index:
        assert {h.video_id for h in index.search("red square", k=5)} == {"a", "b"}


def test_the_command_train_matcher(corpus, tmp_path, capsys):
    import yaml

    cfg = tiny_config(corpus, "unused").to_dict()
    cfg.update(output_dir=str(tmp_path / "run"), max_steps=3, save_every=0)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(cfg))
    argv = ["-q", "train-matcher", "--config", str(tmp_path / "m.yaml")]
    assert main([*argv, "--set", "seed=3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 3 and summary["best_metric"] == "loss"
    assert load_matcher(tmp_path / "run" / "best").config.n_frames == TINY["n_frames"]
    assert main([*argv, "--set", "model.n_heads=0"]) == 2
    assert "n_heads must be >= 1" in capsys.readouterr().err
