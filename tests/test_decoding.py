"""Grammar-constrained decoding: the mask against a reference checker, and a tiny
overfitted model decoded back to its events by greedy and beam search."""

import random
from dataclasses import replace

import pytest
import torch

from densevid.config import ModelConfig
from densevid.decoding import DecodingOptions, TimeGrammar, decode, generate
from densevid.errors import DensevidError
from densevid.events import Event
from densevid.model import build_model
from densevid.text import TimeTokenizer, train_tokenizer
from helpers import TINY_LM

LO, N, EOS, V = 10, 6, 1, 16  # time ids 10..15; text ids 2..9 (pad 0, eos 1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_next(prefix: list[int]) -> set[int]:
    """Tokens that keep a sequence ``(t_s t_e text+)* </s>`` with t_e > t_s,
    starts non-decreasing and no start in the last bin: written independently."""
    times = [t - LO for t in prefix if LO <= t < LO + N]
    starts = times[0::2]
    last = prefix[-1] if prefix else None
    last_is_time = last is not None and LO <= last < LO + N
    text = set(range(3, LO))  # 2 is banned (stands for unk)
    if last_is_time and len(times) % 2 == 1:  # need an end
        return {LO + k for k in range(N) if k > times[-1]}
    if last_is_time:  # need text
        return text
    floor = starts[-1] if starts else 0
    times_next = {LO + k for k in range(floor, N - 1)}
    return times_next | {EOS} | (text if prefix else set())


def test_grammar_mask_matches_reference_on_random_walks():
    grammar = TimeGrammar(LO, N, EOS, V, banned=[0, 2])
    rng = random.Random(0)
    for _ in range(200):
        prefix: list[int] = []
        for _ in range(rng.randint(0, 14)):
            allowed = reference_next(prefix) - {EOS}
            prefix.append(rng.choice(sorted(allowed)))
        mask = grammar.allowed(torch.tensor([[0, *prefix]]))[0]
        got = {i for i in range(V) if mask[i]}
        assert got == reference_next(prefix), prefix


def test_grammar_sets_disallowed_scores_to_minus_inf_only():
    grammar = TimeGrammar(LO, N, EOS, V, banned=[0])
    scores = torch.zeros(2, V + 2)  # LM rows beyond the tokenizer are banned too
    out = grammar(
        torch.tensor([[0, LO, LO + 1, 3, LO + 2], [0, LO, LO + 3, 4, 5]]), scores
    )
    assert torch.isinf(out[0, : LO + 3]).all() and (out[0, LO + 3 : LO + N] == 0).all()
    assert torch.isinf(out[:, V:]).all()
    assert out[1, EOS] == 0 and out[1, 5] == 0


def test_unconstrained_grammar_only_bans():
    grammar = TimeGrammar(LO, N, EOS, V, banned=[0], constrained=False)
    mask = grammar.allowed(torch.tensor([[0, LO + 3]]))
    assert mask[0, 0].item() is False and mask[0, 1:].all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "sample"}, "method"),
        ({"beam_size": 0}, "beam_size"),
        ({"max_length": 2}, "max_length"),
        ({"length_penalty": float("nan")}, "length_penalty"),
        ({"refine_frames": -1}, "refine_frames"),
        ({"soft_time": -1}, "soft_time"),
        ({"eos_bias": float("inf")}, "eos_bias"),
    ],
)
def test_options_are_verified(change, message):
    with pytest.raises(DensevidError, match=message):
        replace(DecodingOptions(), **change).verify()


@pytest.fixture(scope="module")
def overfitted():
    """A tiny model trained until it reproduces two videos' event sequences."""
    torch.manual_seed(0)
    captions = ["a red circle moves left", "the blue square grows", "a star appears"]
    tok = train_tokenizer(captions * 3, vocab_size=200, n_time_tokens=10)
    config = ModelConfig(**TINY_LM, n_time_tokens=10, n_frames=4, visual_dim=4)
    model = build_model(config, tok)
    tt = TimeTokenizer(tok, 10)
    targets = [
        [Event(1.0, 4.0, "a red circle moves left"), Event(5.0, 8.0, "a star appears")],
        [Event(0.0, 9.0, "the blue square grows")],
    ]
    seqs = [tt.encode_events(t, 9.0) for t in targets]
    width = max(map(len, seqs))
    labels = torch.tensor([s + [-100] * (width - len(s)) for s in seqs])
    visual = torch.eye(4)[None].repeat(2, 1, 1)
    visual[1] = visual[1].flip(0)
    batch = dict(
        visual=visual,
        visual_mask=torch.ones(2, 4, dtype=torch.bool),
        durations=torch.tensor([9.0, 9.0]),
        video_ids=["v0", "v1"],
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        logits = model(labels, visual=visual, visual_mask=batch["visual_mask"])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    return model.eval(), batch, targets


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_overfitted_model_decodes_its_events(overfitted, method):
    model, batch, targets = overfitted
    videos = decode(model, batch, DecodingOptions(method=method, max_length=24))
    assert [v.video_id for v in videos] == ["v0", "v1"]
    for video, target in zip(videos, targets, strict=True):
        # times are bins of 1 s here (duration 9 s, N = 10), so exact
        assert [(e.start, e.end, e.text) for e in video.events] == [
            (e.start, e.end, e.text) for e in target
        ]
        for e in video.events:
            assert -1.0 < e.score <= 0.0  # mean log-prob of a confident model


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_decoding_on_cuda_gives_the_cpu_events(overfitted, method):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model, batch, _ = overfitted
    options = DecodingOptions(method=method, max_length=24)
    on_cpu = decode(model, batch, options)
    gpu_batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    try:
        on_gpu = decode(model.cuda(), gpu_batch, options)
    finally:
        model.cpu()
    for a, b in zip(on_cpu, on_gpu, strict=True):
        assert [(e.start, e.end, e.text) for e in a.events] == [
            (e.start, e.end, e.text) for e in b.events
        ]
        for x, y in zip(a.events, b.events, strict=True):
            assert x.score == pytest.approx(y.score, abs=1e-4)


@pytest.mark.parametrize("decoder_layers", [1, 2])  # 2: deeper than the encoder
def test_beam_and_greedy_outputs_always_parse(overfitted, decoder_layers):
    """A random (untrained) model: whatever comes out follows the grammar."""
    model, batch, _ = overfitted
    torch.manual_seed(5)
    config = replace(model.config, lm_config={}, n_decoder_layers=decoder_layers)
    fresh = build_model(config, model.tokenizer).eval()

    tt = fresh.time_tokenizer
    for options in [
        DecodingOptions(method="greedy", max_length=30),
        DecodingOptions(beam_size=3, max_length=30),
    ]:
        sequences = generate(fresh, batch, options).sequences
        for row in sequences.tolist():
            prefix: list[int] = []
            for token in row[1:]:
                if token in (0, tt.eos_id):
                    break
                times = [t for t in prefix if tt.is_time(t)]
                if tt.is_time(token) and len(times) % 2 == 1:
                    assert token > times[-1]
                elif tt.is_time(token) and times:
                    assert token >= times[-2]
                prefix.append(token)


def test_eos_bias_trades_fewer_or_more_events(overfitted):
    model, batch, targets = overfitted
    grammar = TimeGrammar(LO, N, EOS, V, banned=[0], eos_bias=-2.5)
    scores = torch.zeros(1, V)
    out = grammar(torch.tensor([[0]]), scores)
    assert out[0, EOS] == -2.5 and out[0, LO] == 0 and scores[0, EOS] == 0
    n_targets = [len(t) for t in targets]
    for method in ("greedy", "beam"):
        options = DecodingOptions(method=method, max_length=40)
        none = decode(model, batch, replace(options, eos_bias=50.0))
        assert [len(v.events) for v in none] == [0, 0]  # ending always wins
        same = decode(model, batch, options)
        assert [len(v.events) for v in same] == n_targets
        # never ending: every sequence runs to max_length (the model may go on
        # with further events or with longer captions)
        longer = replace(options, eos_bias=-50.0)
        sequences = generate(model, batch, longer).sequences
        assert sequences.shape[1] == 1 + options.max_length
        assert not (sequences == model.time_tokenizer.eos_id).any()
        more = decode(model, batch, longer)
        assert all(len(v.events) >= n for v, n in zip(more, n_targets, strict=True))


def test_refine_time_finds_a_gaussian_peak_between_frames():
    from densevid.decoding import refine_time

    frames = torch.arange(20, dtype=torch.float64)
    peak = torch.exp(-0.5 * (frames - 7.3) ** 2).numpy()  # the head's target shape
    # frame j stands at (j + 0.5) / 20 of a 40 s video: the peak is at 15.6 s
    assert refine_time(17.0, peak, 40.0, 2) == pytest.approx(15.6, abs=1e-6)
    assert refine_time(25.0, peak, 40.0, 2) == 25.0  # no peak within 2 frames
    assert refine_time(17.0, 0.4 * peak, 40.0, 2) == 17.0  # too weak to trust


def test_decode_moves_boundaries_to_the_frame_heads_peaks(overfitted):
    from densevid.decoding import refine_event

    model, batch, targets = overfitted
    e = Event(1.0, 4.0, "x")
    crossing = torch.zeros(4, 3).numpy()
    crossing[3, 1] = crossing[0, 2] = 1.0  # start peak after the end peak
    assert refine_event(e, crossing, 9.0, 4) == e
    # a head whose start peak is frame 0 and end peak frame 3 (of 4, 9 s video)
    logits = torch.full((2, 4, 3), -9.0)
    logits[:, 0, 1] = logits[:, 3, 2] = 9.0
    model.frame_head = lambda states: logits
    try:
        wide = DecodingOptions(method="greedy", max_length=24, refine_frames=4)
        for video in decode(model, batch, wide):
            for e in video.events:
                assert (e.start, e.end) == pytest.approx((0.5 / 4 * 9, 3.5 / 4 * 9))
        off = DecodingOptions(method="greedy", max_length=24, refine_frames=0)
        got = [[(e.start, e.end) for e in v.events] for v in decode(model, batch, off)]
        assert got == [[(e.start, e.end) for e in t] for t in targets]
    finally:
        model.frame_head = None


def test_time_shifts_are_the_mean_offset_of_nearby_bins():
    from densevid.decoding import time_shifts

    probs = torch.full((1, 3, V), 1e-9)
    probs[0, 0, 3] = 1.0  # a text token: no shift
    probs[0, 1, LO + 1 : LO + 4] = torch.tensor([0.2, 0.5, 0.3])  # around bin 2
    probs[0, 2, LO : LO + 2] = torch.tensor([0.6, 0.4])  # bin 0: nothing below
    ids = torch.tensor([[3, LO + 2, LO]])
    shifts = time_shifts(probs.log(), ids, LO, N, window=1)
    assert shifts[0].tolist() == pytest.approx([0.0, 0.1, 0.4], abs=1e-6)
    assert time_shifts(probs.log(), ids, LO, N, window=0).abs().sum() == 0


def test_soft_time_moves_decoded_times_between_bins(overfitted):
    model, batch, targets = overfitted
    tt = model.time_tokenizer
    ids = [tt.time_offset + 2, tt.time_offset + 5, *tt.encode_text("a star appears")]
    (plain,) = tt.decode_events(ids, 9.0)
    (soft,) = tt.decode_events(ids, 9.0, time_shifts=[0.5, -0.25] + [0.0] * 3)
    bin_s = 9.0 / (tt.n_time_tokens - 1)
    assert soft.start == pytest.approx(plain.start + 0.5 * bin_s)
    assert soft.end == pytest.approx(plain.end - 0.25 * bin_s)
    # decoding with the window on keeps the overfitted model's events near their bins
    options = DecodingOptions(method="greedy", max_length=24, soft_time=2)
    for video, target in zip(decode(model, batch, options), targets, strict=True):
        got = [(e.start, e.end) for e in video.events]
        want = [(e.start, e.end) for e in target]
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g == pytest.approx(w, abs=2 * bin_s)


@pytest.mark.parametrize("command", ["predict", "caption"])
def test_cli_decoding_defaults_are_decoding_options_defaults(command):
    from densevid.cli import build_parser

    base = ["run", "--features", "f", "--annotations", "a", "-o", "o"]
    argv = [command, *(base if command == "predict" else ["v.mp4", "-o", "o"])]
    args = build_parser().parse_args(argv)
    defaults = DecodingOptions()
    assert args.refine_frames == defaults.refine_frames
    assert args.soft_time == defaults.soft_time
    assert args.eos_bias == defaults.eos_bias


@pytest.mark.parametrize("command", ["predict", "caption"])
def test_cli_decoding_flags_are_made_from_decoding_options(command):
    from dataclasses import fields

    from densevid.cli import DECODING_HELP, build_parser, dataclass_from_flags

    assert set(DECODING_HELP) == {f.name for f in fields(DecodingOptions)}
    base = ["run", "--features", "f", "--annotations", "a", "-o", "o"]
    argv = [command, *(base if command == "predict" else ["v.mp4", "-o", "o"])]
    parser = build_parser()
    assert dataclass_from_flags(DecodingOptions, parser.parse_args(argv)) == (
        DecodingOptions()
    )
    flags = ["--method", "greedy", "--beam-size", "2", "--length-penalty", "0.5"]
    for no_grammar in ("--no-constrained", "--no-constraint"):
        args = parser.parse_args([*argv, *flags, no_grammar])
        assert dataclass_from_flags(DecodingOptions, args) == DecodingOptions(
            method="greedy", beam_size=2, length_penalty=0.5, constrained=False
        )


def _until_eos(row: list[int], eos: int) -> list[int]:
    return row[: row.index(eos) + 1] if eos in row else row


@pytest.mark.parametrize("trained", [True, False])
def test_own_beam_search_finds_what_transformers_finds(overfitted, trained):
    """The search ensembles use, given one model, agrees with transformers'."""
    from densevid.decoding import beam_search, make_grammar

    model, batch, _ = overfitted
    if not trained:
        torch.manual_seed(3)
        model = build_model(replace(model.config, lm_config={}), model.tokenizer)
        model.eval()
    inputs = {k: v for k, v in batch.items() if torch.is_tensor(v) and k != "visual"}
    eos = model.time_tokenizer.eos_id
    for options in [
        DecodingOptions(method="greedy", max_length=20),
        DecodingOptions(beam_size=3, max_length=20),
    ]:
        theirs = generate(model, batch, options).sequences.tolist()
        with torch.no_grad():
            encoding = model.encode(visual=batch["visual"], **inputs)
            ours = beam_search(
                [model], [encoding], make_grammar(model, options), options
            ).tolist()
        assert [_until_eos(r, eos) for r in ours] == [
            _until_eos(r, eos) for r in theirs
        ]


def test_an_ensemble_of_one_model_twice_decodes_as_the_model(overfitted):
    from densevid.ensemble import Ensemble

    model, batch, targets = overfitted
    pair = Ensemble([model, model]).eval()
    for method in ("greedy", "beam"):
        options = DecodingOptions(method=method, max_length=24)
        for alone, both in zip(
            decode(model, batch, options), decode(pair, batch, options), strict=True
        ):
            assert [(e.start, e.end, e.text) for e in both.events] == [
                (e.start, e.end, e.text) for e in alone.events
            ]
            for x, y in zip(alone.events, both.events, strict=True):
                assert x.score == pytest.approx(y.score, abs=1e-5)


def test_an_ensemble_averages_its_members_probabilities(overfitted):
    from densevid.ensemble import Ensemble

    model, batch, targets = overfitted
    torch.manual_seed(4)
    other = build_model(replace(model.config, lm_config={}), model.tokenizer).eval()
    pair = Ensemble([model, other]).eval()
    tt = model.time_tokenizer
    labels = torch.tensor([tt.encode_events(targets[1], 9.0)] * 2)
    inputs = {k: v for k, v in batch.items() if torch.is_tensor(v)}
    with torch.no_grad():
        p = torch.softmax(model(labels, **inputs), -1)
        q = torch.softmax(other(labels, **inputs), -1)
        mixed = pair(labels, **inputs)
        assert torch.allclose(mixed.exp(), (p + q) / 2, atol=1e-6)
        total, count = pair.log_likelihood(labels, **inputs)
        alone, _ = model.log_likelihood(labels, **inputs)
    # the confident member carries the mixture: at most log 2 per token below it
    assert (total <= alone + 1e-4).all()
    assert (total >= alone - count * torch.log(torch.tensor(2.0)) - 1e-4).all()
    # and the pair still decodes the overfitted member's events
    for video, target in zip(
        decode(pair, batch, DecodingOptions()), targets, strict=True
    ):
        assert [e.text for e in video.events] == [e.text for e in target]


def test_an_ensemble_refuses_members_that_read_other_inputs(overfitted):
    from densevid.ensemble import Ensemble

    model, _, _ = overfitted
    with pytest.raises(DensevidError, match="at least two"):
        Ensemble([model])
    wider = build_model(
        replace(model.config, lm_config={}, n_frames=8), model.tokenizer
    )
    with pytest.raises(DensevidError, match="b: .* n_frames is 8, not 4"):
        Ensemble([model, wider], ["a", "b"])
    tok = train_tokenizer(
        ["other words entirely"] * 3, vocab_size=200, n_time_tokens=10
    )
    config = replace(model.config, lm_config={}, vocab_size=0, time_offset=0)
    stranger = build_model(config, tok)
    stranger.config = replace(stranger.config, vocab_size=model.config.vocab_size)
    stranger.config = replace(stranger.config, time_offset=model.config.time_offset)
    with pytest.raises(DensevidError, match="another tokenizer"):
        Ensemble([model, stranger])


def test_given_segments_get_the_captions_the_model_learned_for_them(overfitted):
    from densevid.decoding import caption_segments

    model, batch, targets = overfitted
    segments = [[(e.start, e.end) for e in t] for t in targets]
    segments[0] = segments[0][::-1]  # given in any order, captioned in time order
    videos = caption_segments(model, batch, segments, DecodingOptions(max_length=24))
    for video, target in zip(videos, targets, strict=True):
        assert [(e.start, e.end, e.text) for e in video.events] == [
            (e.start, e.end, e.text) for e in target
        ]
        assert all(-1.0 < e.score <= 0.0 for e in video.events)


def test_a_segment_is_captioned_in_the_context_of_the_earlier_ones(overfitted):
    from densevid.decoding import caption_segments

    model, batch, _ = overfitted
    # video 0 learned "a star appears" at 5-8 s after its first event; asked for
    # 5-8 s alone the model still gives a caption, and the time tokens never leak
    # into it
    (video,) = caption_segments(
        model,
        {**batch, "video_ids": ["v0"], "durations": batch["durations"][:1]},
        [[(5.0, 8.0), (8.5, 8.9)]],
        DecodingOptions(max_length=24),
    )
    assert [(e.start, e.end) for e in video.events] == [(5.0, 8.0), (8.5, 8.9)]
    assert all(e.text and "<" not in e.text for e in video.events)


def test_a_segment_past_max_length_is_captioned_on_its_own(overfitted, caplog):
    from densevid.decoding import caption_segments

    model, batch, targets = overfitted
    tt = model.time_tokenizer
    first = targets[0][:1]
    # room for the start token, the first event and its caption's end, no more
    room = 1 + len(tt.encode_events(first, 9.0))
    one = {**batch, "video_ids": ["v0"], "durations": batch["durations"][:1]}
    segments = [[(e.start, e.end) for e in targets[0]]]
    with caplog.at_level("WARNING", logger="densevid.decoding"):
        (full,) = caption_segments(model, one, segments, DecodingOptions(max_length=24))
    assert not caplog.records
    with caplog.at_level("WARNING", logger="densevid.decoding"):
        (cut,) = caption_segments(
            model, one, segments, DecodingOptions(max_length=room)
        )
    assert "1 of 2 segments were captioned after their own time tokens" in caplog.text
    assert cut.events[0].text == full.events[0].text == first[0].text
    # the second is decoded as if it were the video's first event, not left empty
    assert cut.events[1].text and "<" not in cut.events[1].text


def test_given_segments_with_a_time_pointer_model_batch_of_two(overfitted):
    from densevid.decoding import caption_segments

    model, batch, targets = overfitted
    config = ModelConfig(
        **TINY_LM, n_time_tokens=10, n_frames=4, visual_dim=4, time_pointer=True
    )
    pointer = build_model(config, model.tokenizer).eval()
    segments = [[(e.start, e.end) for e in t] for t in targets]
    videos = caption_segments(pointer, batch, segments, DecodingOptions(max_length=12))
    assert [[(e.start, e.end) for e in v.events] for v in videos] == segments
