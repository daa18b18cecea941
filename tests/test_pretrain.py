"""Pretraining: span corruption, transcripts as pseudo events, corpora from a
features directory and from webdataset shards split across ranks and workers, a
few steps that lower both losses, exact resume, and fine-tuning with train --init."""

import io
import itertools
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from densevid.checkpoint import init_model, load_model
from densevid.cli import main
from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents, save_annotations
from densevid.features.cache import load_features, save_features, save_speech
from densevid.features.extract import pack_webdataset
from densevid.pretrain_data import (
    PretrainTransform,
    collate_pretrain,
    ensure_sentinels,
    random_span_mask,
    restore_spans,
    span_corrupt,
    transcript_events,
)
from densevid.shards import (
    CorpusStream,
    FeatureDirSource,
    ShardSource,
    expand_shards,
    heldout_samples,
    is_heldout,
    iter_raw,
)
from densevid.text import TimeTokenizer, train_tokenizer
from densevid.training import PretrainConfig, load_pretrain_config, pretrain
from helpers import TINY_LM, torchrun_two

SENTENCES = [
    "now the red circle appears",
    "the blue square moves to the left",
    "look a green star grows",
]
DIM, ROWS = 6, 12
TINY_MODEL = {
    **TINY_LM,
    "n_time_tokens": 20,
    "n_frames": 8,
    "max_speech_tokens": 40,
    "max_target_tokens": 40,
}


def make_narrated(root: Path, n_videos: int = 10, seed: int = 0) -> Path:
    """FEATURES/pixels + FEATURES/subtitles; channel k lights while sentence k is
    spoken, so the transcript is predictable from the frames."""
    rng = np.random.default_rng(seed)
    for i in range(n_videos):
        duration = float(rng.uniform(8, 20))
        times = (np.arange(ROWS) + 0.5) * duration / ROWS
        x = rng.normal(0, 0.1, (ROWS, DIM)).astype(np.float32)
        k = i % 3
        s = float(rng.uniform(0, duration / 2))
        e = float(rng.uniform(s + 1, duration))
        x[(times >= s) & (times <= e), k] += 1.0
        vid = f"v{i:02d}"
        meta = {"fps": ROWS / duration, "duration": duration, "timestamps": times}
        save_features(root, "pixels", vid, x, meta)
        segs = [{"start": s, "end": e, "text": SENTENCES[k]}]
        save_speech(root, "subtitles", vid, segs, {"duration": duration})
    return root


@pytest.fixture(scope="module")
def narrated(tmp_path_factory):
    return make_narrated(tmp_path_factory.mktemp("narrated"))


@pytest.fixture(scope="module")
def shards(narrated):
    """The corpus packed as `densevid extract --webdataset` packs it: 4 tars."""
    ids = [f"v{i:02d}" for i in range(10)]
    return pack_webdataset(narrated, ["pixels", "subtitles"], ids, maxcount=3)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(
        SENTENCES, tmp_path_factory.mktemp("tok"), vocab_size=80, n_time_tokens=20
    )


def tiny_pretrain(corpus, out: Path, **kw) -> PretrainConfig:
    base = dict(
        corpus=str(corpus),
        speech="subtitles",
        output_dir=str(out),
        model=dict(TINY_MODEL),
        vocab_size=80,
        max_steps=6,
        batch_size=4,
        lr=3e-3,
        warmup_steps=2,
        eval_every=0,
        save_every=3,
        log_every=2,
        heldout_fraction=0.2,
        shuffle_buffer=4,
        seed=1,
        device="cpu",
        num_threads=1,  # tiny matrices: threads only add contention
    )
    base.update(kw)
    return PretrainConfig.from_dict(base)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# --- span corruption -----------------------------------------------------------------


def runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True (an independent span count)."""
    padded = np.concatenate([[0], mask.astype(int), [0]])
    starts = np.flatnonzero(np.diff(padded) == 1)
    ends = np.flatnonzero(np.diff(padded) == -1)
    return (ends - starts).tolist()


def test_span_mask_has_the_t5_statistics():
    freq = np.zeros(200)
    lengths = []
    for seed in range(300):
        mask = random_span_mask(200, np.random.default_rng(seed))
        spans = runs(mask)
        assert mask.sum() == 50  # 25 % exactly
        assert len(spans) == 10  # 50 / mean span 5
        lengths += spans
        freq += mask
    assert np.mean(lengths) == pytest.approx(5.0)
    assert np.std(lengths) > 2  # span lengths vary, not all 5
    # away from the ends every position is masked about 25 % of the time, and the
    # two ends alike (T5's layout would always mask the last token)
    assert np.all(np.abs(freq[10:-10] / 300 - 0.25) < 0.1)
    assert np.all(np.abs(freq[:10] - freq[::-1][:10]) / 300 < 0.1)
    assert freq[-1] < 100
    # short sequences and the sentinel cap
    assert runs(random_span_mask(37, np.random.default_rng(0))) and (
        random_span_mask(37, np.random.default_rng(0)).sum() == 9
    )
    capped = random_span_mask(400, np.random.default_rng(0), max_spans=3)
    assert len(runs(capped)) == 3 and capped.sum() == 100
    assert random_span_mask(1, np.random.default_rng(0)).sum() == 0


@pytest.mark.parametrize("length", [1, 2, 3, 7, 20, 63, 256])
def test_span_corruption_round_trips_exactly(length):
    sentinels = list(range(1000, 1020))
    ids = np.random.default_rng(length).integers(3, 500, length).tolist()
    inputs, targets = span_corrupt(ids, sentinels, np.random.default_rng(7))
    assert restore_spans(inputs, targets, sentinels) == ids
    # an independent construction from the same mask, run by run
    mask = random_span_mask(length, np.random.default_rng(7))
    want_in, want_out, k = [], [], 0
    for masked, group in itertools.groupby(
        zip(mask, ids, strict=True), key=lambda x: x[0]
    ):
        tokens = [t for _, t in group]
        if masked:
            want_in.append(sentinels[k])
            want_out += [sentinels[k], *tokens]
            k += 1
        else:
            want_in += tokens
    assert (inputs, targets) == (want_in, want_out)
    n_masked = len(targets) - k
    assert n_masked == (0 if length < 2 else max(1, round(length * 0.25)))


def test_sentinels_exist_and_are_added_when_missing(tokenizer, tmp_path):
    ids = ensure_sentinels(tokenizer)
    assert len(ids) == 20 and len(set(ids)) == 20
    assert tokenizer.convert_ids_to_tokens(ids[:2]) == ["<extra_id_0>", "<extra_id_1>"]
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bare = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2}, "<unk>"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=bare, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    added = ensure_sentinels(fast, 5)
    assert added == [3, 4, 5, 6, 7] and len(fast) == 8


def test_transcript_becomes_time_tokenised_pseudo_events(tokenizer):
    tt = TimeTokenizer(tokenizer, 20)
    segs = [
        {"start": 9.5, "end": 12.0, "text": " the blue square  moves to the left "},
        {"start": -1.0, "end": 4.75, "text": "now the red circle appears"},
        {"start": 5.0, "end": 5.0, "text": "no length"},
        {"start": 6.0, "end": 8.0, "text": "   "},
    ]
    events = transcript_events(segs, duration=19.0)
    assert events == [
        {"start": 0.0, "end": 4.75, "text": "now the red circle appears"},
        {"start": 9.5, "end": 12.0, "text": "the blue square moves to the left"},
    ]
    ids = tt.encode_events(events, 19.0)
    # k = round(t / duration * (N - 1)): 0, 5 (4.75 s), 10 (9.5 s), 12 (12 s)
    times = [tt.time_of(i, 19.0) for i in ids if tt.is_time(i)]
    assert [round(t / 19.0 * 19) for t in times] == [0, 5, 10, 12]
    decoded = tt.decode_events(ids, 19.0)
    assert [e.text for e in decoded] == [e["text"] for e in events]


# --- corpora -----------------------------------------------------------------------


def keys_of(source, units, slot, n_slots, fraction=0.0, epoch=0):
    return [
        r["__key__"]
        for r in iter_raw(
            source, units, slot, n_slots, seed=3, epoch=epoch, heldout_fraction=fraction
        )
    ]


@pytest.mark.parametrize("n_slots", [1, 2, 4, 7])
def test_shards_split_every_sample_once_across_slots(shards, n_slots):
    source = ShardSource([str(p) for p in shards], "pixels", "subtitles")
    assert len(source.units) == 4
    for epoch in (0, 1):
        seen = [
            k
            for slot in range(n_slots)
            for k in keys_of(source, source.units, slot, n_slots, epoch=epoch)
        ]
        assert sorted(seen) == [f"v{i:02d}" for i in range(10)]


def test_dataloader_workers_and_ranks_stream_each_sample_once(shards):
    """2 simulated DDP ranks x 2 real dataloader workers, one epoch."""
    source = ShardSource(str(shards[0].parent), "pixels", "subtitles")

    def keep_key(video, rng):
        return video.key

    seen = []
    for rank in range(2):
        stream = CorpusStream(
            source, keep_key, rank=rank, world=2, seed=5, shuffle_buffer=3, epochs=1
        )
        loader = torch.utils.data.DataLoader(
            _Iterable(stream), batch_size=None, num_workers=2
        )
        seen += list(loader)
    assert sorted(seen) == [f"v{i:02d}" for i in range(10)]


class _Iterable(torch.utils.data.IterableDataset):
    def __init__(self, stream):
        self.stream = stream

    def __iter__(self):
        return iter(self.stream)


def test_heldout_part_is_disjoint_and_found_without_an_index(narrated, shards):
    fraction = 0.3
    expected = sorted(
        k for k in (f"v{i:02d}" for i in range(10)) if is_heldout(k, fraction)
    )
    assert 0 < len(expected) < 10
    for source in (
        FeatureDirSource(narrated, "pixels", "subtitles"),
        ShardSource(str(shards[0].parent), "pixels", "subtitles"),
    ):
        train_keys = keys_of(source, source.units, 0, 1, fraction)
        held = sorted(r["__key__"] for r in heldout_samples(source, fraction, 100))
        assert held == expected
        assert not set(train_keys) & set(held)
        assert len(train_keys) + len(held) == 10
        assert [r["__key__"] for r in heldout_samples(source, fraction, 1)] == [
            next(
                r["__key__"]
                for u in source.units
                for r in source.read(u)
                if is_heldout(r["__key__"], fraction)
            )
        ]


def test_shard_and_directory_samples_decode_the_same(narrated, shards):
    a = FeatureDirSource(narrated, "pixels", "subtitles")
    b = ShardSource(str(shards[0].parent), "pixels", "subtitles")
    va = a.decode({"__key__": "v03"})
    vb = next(b.decode(r) for u in b.units for r in b.read(u) if r["__key__"] == "v03")
    np.testing.assert_array_equal(va.visual, vb.visual)
    np.testing.assert_allclose(va.visual_times, vb.visual_times)
    assert va.speech == vb.speech and va.duration == vb.duration


def test_video2dataset_layout_subtitles_in_metadata(tmp_path):
    """A video2dataset-style sample: metadata json with yt_meta_dict subtitles."""
    x = np.ones((5, DIM), np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    meta = {
        "key": "000000001",
        "yt_meta_dict": {
            "info": {"duration": 12.5},
            "subtitles": {
                "en": [
                    {"start": "00:00:01.000", "end": "00:00:03.500", "lines": ["hi"]},
                    {"start": "00:00:04.000", "end": "00:00:06.000", "lines": ["x y"]},
                ]
            },
        },
    }
    files = {
        "000000001.pixels.npy": buf.getvalue(),
        "000000001.json": json.dumps(meta).encode(),
        "000000001.txt": b"a caption",
    }
    path = tmp_path / "00000.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = ShardSource(str(tmp_path / "*.tar"), "pixels", "subtitles")
    video = source.decode(next(source.read(source.units[0])))
    assert video.duration == 12.5 and video.visual.shape == (5, DIM)
    assert video.speech == [
        {"start": 1.0, "end": 3.5, "text": "hi"},
        {"start": 4.0, "end": 6.0, "text": "x y"},
    ]
    np.testing.assert_allclose(video.visual_times, (np.arange(5) + 0.5) * 2.5)
    with pytest.raises(DensevidError, match="no such shard"):
        expand_shards(str(tmp_path / "{00000..00001}.tar"))


def test_video2dataset_video_gets_features_on_the_fly(tmp_path):
    """A sample with only the video and a .vtt: pixels computed from the mp4 bytes
    equal the extractor run on the file itself."""
    from densevid.features.registry import get_extractor
    from densevid.synth.dataset import write_mp4
    from densevid.synth.world import FRAME_SIZE

    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 255, (FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
        for _ in range(16)
    ]
    video = tmp_path / "clip.mp4"
    write_mp4(video, frames, np.zeros(16000, np.float32), 8)
    vtt = b"WEBVTT\n\n00:00:00.200 --> 00:00:01.500\nA red circle appears.\n"
    files = {
        "k1.mp4": video.read_bytes(),
        "k1.en.vtt": vtt,
        "k1.json": json.dumps({"key": "k1"}).encode(),
    }
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = ShardSource(str(tmp_path / "s.tar"), "pixels", "subtitles")
    got = source.decode(next(source.read(source.units[0])))
    want = get_extractor("pixels")(video)
    np.testing.assert_allclose(got.visual, np.asarray(want.array, np.float32))
    assert got.duration == pytest.approx(want.meta["duration"])
    assert got.speech == [{"start": 0.2, "end": 1.5, "text": "A red circle appears."}]


# --- the run -----------------------------------------------------------------------


def test_collate_gives_frames_only_generative_and_corrupted_denoising(
    narrated, tokenizer
):
    from densevid.config import ModelConfig

    cfg = ModelConfig(
        **TINY_MODEL, visual_dim=DIM, speech_features="subtitles", frame_events=True
    )
    tt = TimeTokenizer(tokenizer, 20)
    sentinels = ensure_sentinels(tokenizer)
    transform = PretrainTransform(cfg, tt, sentinels, denoise=True)
    source = FeatureDirSource(narrated, "pixels", "subtitles")
    items = [
        transform(source.decode({"__key__": k}), np.random.default_rng(0))
        for k in ("v00", "v01")
    ]
    batch = collate_pretrain(items, tt.pad_id)
    gen, den = batch["generative"], batch["denoising"]
    assert gen["speech_mask"].sum() == 0  # frames only
    assert gen["visual"].shape == (2, 8, DIM)
    # the transcript's sentences also teach the frame-event head, generatively only
    assert gen["frame_targets"].shape == (2, 8, 3) and gen["frame_targets"].max() > 0
    assert "frame_targets" not in den
    for i, it in enumerate(items):
        full = it["labels"][:-1]  # the transcript, as the generative target
        restored = restore_spans(
            it["speech_ids"][:-1], it["denoise_labels"][:-1], sentinels
        )
        assert restored == full
        n = len(it["speech_ids"])
        assert den["speech_ids"][i, :n].tolist() == it["speech_ids"]
        assert den["speech_mask"][i].sum() == n


def test_pretraining_lowers_both_losses_and_logs_them(narrated, tmp_path):
    losses = []
    cfg = tiny_pretrain(narrated, tmp_path / "run", max_steps=40, eval_every=20)
    summary = pretrain(cfg, on_step=lambda s, d: losses.append(d))
    gen = [d["gen_loss"] for d in losses]
    den = [d["den_loss"] for d in losses]
    assert np.mean(gen[-5:]) < 0.6 * np.mean(gen[:5])
    assert np.mean(den[-5:]) < 0.6 * np.mean(den[:5])
    for d in losses:
        assert d["loss"] == pytest.approx(d["gen_loss"] + d["den_loss"])
    held = summary["heldout"]
    assert held["n_videos"] >= 1
    assert held["gen_log_likelihood"] < 0 and held["den_log_likelihood"] < 0
    log = [
        json.loads(x)
        for x in (tmp_path / "run" / "log.jsonl").read_text().split("\n")
        if x
    ]
    assert {"gen_loss", "den_loss", "videos_per_s"} <= set(log[0])
    assert [r["step"] for r in log if "heldout" in r] == [20, 40]
    model = load_model(tmp_path / "run" / "last")
    assert model.config.speech_features == "subtitles"
    assert len(ensure_sentinels(model.tokenizer)) == 20
    # trained on lower-case transcripts, yet any ASCII text has no <unk>
    ids = model.tokenizer.encode("The BIG Quick-Fox, 42!", add_special_tokens=False)
    assert model.tokenizer.unk_token_id not in ids
    text = model.tokenizer.decode(ids)
    assert text.replace(" ", "") == "TheBIGQuick-Fox,42!"


@pytest.mark.parametrize(
    "weights, trained",
    [((1.0, 0.0), "gen_loss"), ((0.0, 1.0), "den_loss"), ((0.0, 2.0), "den_loss")],
)
def test_one_objective_alone_trains_only_that_part(
    narrated, tmp_path, weights, trained
):
    """generative_weight=0 / denoise_weight=0: the other part is never computed
    (its loss stays 0), the total is the weighted part, ``best`` follows it."""
    gen_w, den_w = weights
    losses = []
    cfg = tiny_pretrain(
        narrated,
        tmp_path / "run",
        max_steps=12,
        eval_every=6,
        generative_weight=gen_w,
        denoise_weight=den_w,
    )
    summary = pretrain(cfg, on_step=lambda s, d: losses.append(d))
    (other,) = {"gen_loss", "den_loss"} - {trained}
    weight = gen_w if trained == "gen_loss" else den_w
    for d in losses:
        assert d[trained] > 0 and d.get(other, 0.0) == 0.0
        assert d["loss"] == pytest.approx(weight * d[trained])
    assert np.mean([d[trained] for d in losses[-3:]]) < np.mean(
        [d[trained] for d in losses[:3]]
    )
    want = "den_log_likelihood" if gen_w == 0 else "gen_log_likelihood"
    assert summary["best_metric"] == want
    model = load_model(tmp_path / "run" / "last")
    # the denoising input needs the speech path; generative-only has none
    assert model.config.speech_features == ("subtitles" if den_w else "")


def test_both_objectives_off_is_an_error(tmp_path):
    with pytest.raises(DensevidError, match="generative_weight"):
        load_pretrain_config(
            None, ["corpus=x", "generative_weight=0", "denoise_weight=0"]
        ).verify()
    with pytest.raises(DensevidError, match="generative_weight"):
        load_pretrain_config(None, ["corpus=x", "generative_weight=-1"]).verify()


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_resume_continues_the_same_stream_and_weights(shards, tmp_path, dropout):
    """With dropout the restored RNG must also be where it was: resuming draws no
    random number the uninterrupted run did not."""
    corpus = str(shards[0].parent)
    model = dict(TINY_MODEL, dropout=dropout)

    def tiny_pretrain(*args, **kw):
        return globals()["tiny_pretrain"](*args, model=model, **kw)

    full = pretrain(tiny_pretrain(corpus, tmp_path / "a", max_steps=6, save_every=3))

    def kill(step, _):
        if step == 4:  # after the checkpoint of step 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_pretrain(corpus, tmp_path / "b", max_steps=6), on_step=kill)
    seen = []
    rest = tiny_pretrain(corpus, tmp_path / "b", max_steps=6, save_every=3)
    resumed = pretrain(rest, on_step=lambda s, d: seen.append(s))
    assert resumed["resumed_from"] == 3 and seen == [4, 5, 6]
    assert resumed["final_loss"] == pytest.approx(full["final_loss"], rel=1e-5)
    a = load_model(tmp_path / "a" / "last").state_dict()
    b = load_model(tmp_path / "b" / "last").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_pretrain_command_then_train_init_fine_tunes(shards, tmp_path, capsys):
    import yaml

    config = tmp_path / "pre.yaml"
    cfg = tiny_pretrain(
        str(shards[0].parent),
        tmp_path / "pre",
        max_steps=4,
        model=dict(TINY_MODEL, frame_events=True, standardize=True),
        eval_every=3,
    )
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    assert (
        main(["-q", "pretrain", "--config", str(config), "--set", "max_steps=3"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 3
    ckpt = tmp_path / "pre" / "last"
    # frames-only fine-tuning model: same weights, speech path off
    frames_only = dict(
        TINY_MODEL, speech_features="", dropout=0.1, frame_events=True, standardize=True
    )
    model = init_model(ckpt, PretrainConfig(model=frames_only).model)
    src = load_model(ckpt)
    # standardised with the corpus's first training samples, not the defaults
    assert src.visual.in_mean.abs().sum() > 0 and (src.visual.in_std != 1).any()
    assert model.config.speech_features == "" and model.config.dropout == 0.1
    for k, v in src.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    with pytest.raises(DensevidError, match="audio stream"):
        init_model(
            ckpt, PretrainConfig(model=dict(TINY_MODEL, audio_features="logmel")).model
        )

    # an annotated corpus with the same features; train --init from the checkpoint
    ann = [
        VideoEvents(f"v{i:02d}", (Event(1.0, 4.0, SENTENCES[i % 3]),), 8.0 + i)
        for i in range(10)
    ]
    save_annotations(ann, tmp_path / "train.json")
    root = tmp_path / "feat"
    for i in range(10):
        save_features(
            root,
            "pixels",
            f"v{i:02d}",
            np.ones((ROWS, DIM), np.float32),
            {"fps": 1.0, "duration": 8.0 + i},
        )
    args = [
        "-q",
        "train",
        "--init",
        str(ckpt),
        "--set",
        f"train_annotations={tmp_path / 'train.json'}",
        "--set",
        f"features={root}",
        "--set",
        f"output_dir={tmp_path / 'ft'}",
        "--set",
        "max_steps=2",
        "--set",
        "batch_size=2",
        "--set",
        "device=cpu",
        "--set",
        "eval_every=0",
        "--set",
        "val_metrics=[]",
        "--set",
        "best_metric=loss",
    ]
    for key, value in dict(TINY_MODEL, frame_events=True, standardize=True).items():
        args += ["--set", f"model.{key}={value}"]
    assert main(args) == 0
    capsys.readouterr()
    tuned = load_model(tmp_path / "ft" / "last")
    assert tuned.tokenizer.get_vocab() == src.tokenizer.get_vocab()
    assert tuned.config.lm_config["d_model"] == src.config.lm_config["d_model"]
    changed = [
        k
        for k, v in src.state_dict().items()
        if not torch.equal(v, tuned.state_dict()[k])
    ]
    assert changed  # fine-tuned
    assert "frame_head.weight" in changed  # the frame-event head too
    # the LM encoder is unused without speech: it must still be the pretrained one
    enc = [k for k in src.state_dict() if k.startswith("lm.encoder.block")]
    assert enc and not set(enc) & set(changed)

    # heads the pretrained model lacks: built from the training captions and
    # events, fresh weights, everything else from the checkpoint
    heads_args = [a.replace(str(tmp_path / "ft"), str(tmp_path / "ft3")) for a in args]
    heads_args += ["--set", "model.n_concepts=3", "--set", "model.n_proposal_anchors=2"]
    heads_args += ["--set", "max_steps=1"]
    assert main(heads_args) == 0
    capsys.readouterr()
    headed = load_model(tmp_path / "ft3" / "last")
    assert len(headed.config.concepts) == 3 and set(headed.config.caption_idf)
    assert len(headed.config.proposal_anchors) == 2
    assert headed.concept_head is not None and headed.proposal_head is not None
    for k in enc:  # unused without speech, so still the pretrained weights
        torch.testing.assert_close(headed.state_dict()[k], src.state_dict()[k])

    # features of another dimension: one line naming them, not a torch error
    wide = tmp_path / "wide"
    for i in range(10):
        save_features(
            wide,
            "pixels",
            f"v{i:02d}",
            np.ones((ROWS, DIM + 3), np.float32),
            {"fps": 1.0, "duration": 8.0 + i},
        )
    wide_args = [a.replace(str(root), str(wide)) for a in args]
    wide_args = [
        a.replace(str(tmp_path / "ft"), str(tmp_path / "ft2")) for a in wide_args
    ]
    assert main(wide_args) == 2
    err = capsys.readouterr().err
    assert f"features are {DIM + 3}-d but the model reads {DIM}-d" in err


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(DensevidError, match="unknown keys"):
        load_pretrain_config(None, ["nonsense=1"])
    with pytest.raises(DensevidError, match="noise_density"):
        load_pretrain_config(None, ["corpus=x", "noise_density=1.5"]).verify()
    with pytest.raises(DensevidError, match="time_sigma"):
        load_pretrain_config(None, ["corpus=x", "time_sigma=-0.5"]).verify()
    cfg = load_pretrain_config(None, ["corpus=x", "model.d_model=64", "lr=3e-4"])
    assert cfg.model.d_model == 64 and cfg.lr == 3e-4
    with pytest.raises(DensevidError, match="no .tar shards|no such shard"):
        pretrain(tiny_pretrain(tmp_path, tmp_path / "out"))


@pytest.mark.slow
def test_torchrun_two_processes_pretrain_from_shards(shards, tmp_path):
    """2 gloo processes x 1 dataloader worker stream disjoint shards and finish."""
    cfg = tiny_pretrain(
        str(shards[0].parent), tmp_path / "ddp", max_steps=3, num_workers=1,
        batch_size=2, eval_every=0, log_every=1,
    )  # fmt: skip
    config = tmp_path / "ddp.yaml"
    config.write_text(json.dumps(cfg.to_dict()))  # JSON is YAML
    proc = torchrun_two("-m", "densevid", "-q", "pretrain", "--config", str(config))
    assert json.loads(proc.stdout)["step"] == 3  # printed once, by rank 0
    log = (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log if "loss" in x] == [1, 2, 3]
    model = load_model(tmp_path / "ddp" / "last")
    assert model.config.speech_features == "subtitles"


def test_corpus_sources_keep_only_the_models_feature_blocks(tmp_path):
    """model.visual_blocks applies to pretraining corpora as to annotated data."""
    root = make_narrated(tmp_path / "narrated", n_videos=1)
    array, meta = load_features(root, "pixels", "v00")
    meta["layout"] = {
        "a": {"start": 0, "stop": 2, "shape": [2]},
        "b": {"start": 2, "stop": DIM, "shape": [DIM - 2]},
    }
    save_features(root, "pixels", "v00", array, meta)
    full = FeatureDirSource(root, "pixels", "subtitles").decode({"__key__": "v00"})
    part = FeatureDirSource(root, "pixels", "subtitles", blocks=["b"]).decode(
        {"__key__": "v00"}
    )
    np.testing.assert_array_equal(part.visual, full.visual[:, 2:])
    with pytest.raises(DensevidError, match="no feature block"):
        FeatureDirSource(root, "pixels", "subtitles", blocks=["c"]).decode(
            {"__key__": "v00"}
        )
