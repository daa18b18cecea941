"""Time quantisation, the tokenizer built here, and event <-> id sequences."""

import math

import pytest

from densevid.errors import DensevidError
from densevid.events import Event
from densevid.text import (
    TimeTokenizer,
    dequantize_time,
    load_tokenizer,
    quantize_time,
    train_tokenizer,
)

CAPTIONS = [
    "a red circle moves left",
    "the blue square grows",
    "a green triangle appears",
    "the yellow star leaves the frame",
    "a small red square bounces",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(CAPTIONS * 4, out, vocab_size=300, n_time_tokens=10)
    return load_tokenizer(out, 10)


@pytest.mark.parametrize(
    ("t", "duration", "n", "k"),
    [
        (0.0, 10.0, 100, 0),
        (10.0, 10.0, 100, 99),
        (5.0, 10.0, 100, 50),  # round(0.5 * 99) = round(49.5) = 50
        (12.0, 10.0, 100, 99),  # past the end: clipped
        (-1.0, 10.0, 100, 0),
        (3.3, 10.0, 11, 3),  # round(0.33 * 10)
        (3.6, 10.0, 11, 4),  # round(0.36 * 10)
        (2.0, 7.0, 8, 2),  # round(2/7 * 7) = 2
    ],
)
def test_quantize_matches_formula(t, duration, n, k):
    assert quantize_time(t, duration, n) == k
    assert k == min(max(math.floor(t / duration * (n - 1) + 0.5), 0), n - 1)


def test_dequantize_is_k_times_duration_over_n_minus_1():
    assert dequantize_time(0, 10.0, 100) == 0.0
    assert dequantize_time(99, 10.0, 100) == pytest.approx(10.0)
    assert dequantize_time(33, 10.0, 100) == pytest.approx(33 * 10 / 99)
    # round trip moves a time by at most half a bin, either way
    for t in [0.1, 1.7, 4.2, 9.9, 9.98]:
        k = quantize_time(t, 10.0, 100)
        assert abs(t - dequantize_time(k, 10.0, 100)) <= 10 / 99 / 2 + 1e-9


def test_zero_duration_is_an_error():
    with pytest.raises(DensevidError, match="duration"):
        quantize_time(1.0, 0.0)


def test_saved_tokenizer_round_trips_text_not_unknowns(tokenizer):
    ids = tokenizer.encode("the blue square grows", add_special_tokens=False)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == "the blue square grows"
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1
    # whole words after BPE on this corpus: short sequences
    assert len(ids) == 4


def test_time_tokens_are_contiguous_and_special(tokenizer):
    tt = TimeTokenizer(tokenizer, 10)
    names = tokenizer.convert_ids_to_tokens(
        list(range(tt.time_offset, tt.time_offset + 10))
    )
    assert names == [f"<time_{i}>" for i in range(10)]
    assert tt.vocab_size == len(tokenizer)


def test_encode_events_sorted_with_times_and_eos(tokenizer):
    tt = TimeTokenizer(tokenizer, 10)
    events = [Event(5.0, 9.0, "the blue square grows"), Event(1.0, 4.0, "a red circle")]
    ids = tt.encode_events(events, 9.0)
    toks = tokenizer.convert_ids_to_tokens(ids)
    # 1/9*9 = 1, 4/9*9 = 4, 5/9*9 = 5, 9/9*9 = 9
    assert toks[:2] == ["<time_1>", "<time_4>"]
    assert toks[5:7] == ["<time_5>", "<time_9>"]
    assert ids[-1] == tokenizer.eos_token_id
    back = tt.decode_events(ids, 9.0)
    assert [(e.start, e.end, e.text) for e in back] == [
        (1.0, 4.0, "a red circle"),
        (5.0, 9.0, "the blue square grows"),
    ]


def test_encode_events_drops_whole_events_past_max_length(tokenizer):
    tt = TimeTokenizer(tokenizer, 10)
    events = [Event(1.0, 2.0, "a red circle"), Event(3.0, 4.0, "the blue square grows")]
    ids = tt.encode_events(events, 10.0, max_length=7)
    assert len(ids) == 6 and ids[-1] == tokenizer.eos_token_id
    assert len(tt.decode_events(ids, 10.0)) == 1


def test_decode_drops_events_without_text_or_with_end_not_after_start(tokenizer):
    tt = TimeTokenizer(tokenizer, 10)
    t = [tt.time_offset + i for i in range(10)]
    word = tt.encode_text("red")
    eos = tokenizer.eos_token_id
    seq = (
        [t[1], t[3]]  # no text: dropped
        + [t[2], t[5], *word]  # kept
        + [t[6], t[6], *word]  # end == start: dropped
        + [t[8], t[7], *word]  # end < start: dropped
        + [t[4], *word]  # one time only: dropped
        + [eos, t[1], t[2], *word]  # after eos: ignored
    )
    events = tt.decode_events(seq, 9.0)
    assert [(e.start, e.end, e.text) for e in events] == [(2.0, 5.0, "red")]


def test_decode_scores_are_mean_token_logprob(tokenizer):
    tt = TimeTokenizer(tokenizer, 10)
    word = tt.encode_text("red")
    seq = [tt.time_offset + 1, tt.time_offset + 2, *word, tokenizer.eos_token_id]
    logp = [-1.0, -2.0] + [-3.0] * len(word) + [-9.0]
    (event,) = tt.decode_events(seq, 9.0, logp)
    assert event.score == pytest.approx((-3.0 - 3.0 * len(word)) / (2 + len(word)))


def test_speech_transcript_uses_the_same_time_tokens(tokenizer):
    tt = TimeTokenizer(tokenizer, 10)
    speech = [{"start": 0.0, "end": 3.0, "text": "a red circle"}]
    ids = tt.encode_speech(speech, 9.0, max_length=64)
    assert ids[:2] == [tt.time_offset + 0, tt.time_offset + 3]
    with pytest.raises(DensevidError, match="start, end, text"):
        tt.encode_speech([{"text": "x"}], 9.0, max_length=64)


def test_tokenizer_without_time_tokens_is_refused(tmp_path):
    from densevid.text import time_offset

    tok = train_tokenizer(CAPTIONS, vocab_size=100, n_time_tokens=5)
    with pytest.raises(DensevidError, match="time tokens"):
        time_offset(tok, 50)


def test_empty_corpus_is_an_error():
    with pytest.raises(DensevidError, match="no non-empty"):
        train_tokenizer(["", "  "])
