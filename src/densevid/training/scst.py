"""Self-critical sequence training (SCST; Rennie et al. 2017, the largest single gain
in seed 001): fine-tune a maximum-likelihood model on the reward of what it writes.

For each training video the model samples ``scst_samples`` whole event sequences
under the time grammar and decodes one greedily; each sample's advantage is its
reward minus the greedy sequence's (``scst_baseline: greedy``) or minus the mean of
the video's other samples (``mean``) (``densevid.training.rewards``: events scored
by tIoU and CIDEr-D together, so localisation is rewarded too), and the loss is
-advantage x the sample's log-probability, token-averaged. Samples that beat the
baseline become likelier, the others less likely; ``scst_ml_weight`` adds the
references' token cross-entropy, which keeps the model near its data. An objective
of the shared loop: everything else (resume, accumulation, weight average,
validation) is the fine-tuning run's.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from densevid.config import DecodingOptions
from densevid.decoding import make_grammar
from densevid.inputs import IGNORE_INDEX, model_inputs
from densevid.model import DenseVideoModel, unwrap
from densevid.training.config import TrainConfig
from densevid.training.finetune import Finetune
from densevid.training.losses import label_events
from densevid.training.rewards import CiderD, sequence_reward

logger = logging.getLogger(__name__)


class SelfCritical(Finetune):
    """Fine-tuning whose loss is the self-critical policy gradient."""

    desc = "scst"

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        captions = (e.text for v in self.train_videos.values() for e in v.events)
        self.cider = CiderD(captions)
        self.rewards: list[tuple[float, float]] = []  # (mean sample, greedy) per step

    def loss(
        self, net: torch.nn.Module, batch: dict[str, Any], cfg: TrainConfig
    ) -> tuple[torch.Tensor, int]:
        model = unwrap(net)
        k = cfg.scst_samples
        # a sample much longer than the references only babbles: cap it, so that
        # one such sample does not keep the whole batch generating
        longest = int((batch["labels"] != IGNORE_INDEX).sum(1).max())
        max_length = min(cfg.model.max_target_tokens, 2 * longest + 8)
        sampled, greedy = sample_sequences(model, batch, k, max_length)
        durations = batch["durations"].tolist()
        tt = model.time_tokenizer
        refs = label_events(model, batch)

        def reward(ids: torch.Tensor, i: int) -> float:
            events = tt.decode_events(ids[1:].tolist(), durations[i])
            return sequence_reward(events, refs[i], self.cider, cfg.scst_reward)

        greedy_rewards = [reward(greedy[i], i) for i in range(len(refs))]
        gains = [reward(sampled[j], j // k) for j in range(sampled.shape[0])]
        if cfg.scst_baseline == "mean" and k > 1:
            # each sample against the mean of its video's other samples
            totals = [sum(gains[i * k : (i + 1) * k]) for i in range(len(refs))]
            base = [(totals[j // k] - g) / (k - 1) for j, g in enumerate(gains)]
        else:
            base = [greedy_rewards[j // k] for j in range(len(gains))]
        advantage = torch.tensor(
            [g - b for g, b in zip(gains, base, strict=True)], device=sampled.device
        )
        self.rewards.append(
            (sum(gains) / len(gains), sum(greedy_rewards) / len(greedy_rewards))
        )
        loss, n = policy_gradient_loss(net, batch, sampled, advantage, k, tt.eos_id)
        if cfg.scst_ml_weight > 0:  # the references' likelihood keeps it anchored
            ml, _ = super().loss(net, batch, cfg)
            loss = loss + cfg.scst_ml_weight * ml
        return loss, n

    def summary(self) -> dict[str, Any]:
        if not self.rewards:
            return {}
        n = max(1, len(self.rewards) // 10)
        first, last = self.rewards[:n], self.rewards[-n:]
        return {
            "scst_reward_first": [sum(x) / n for x in zip(*first, strict=True)],
            "scst_reward_last": [sum(x) / n for x in zip(*last, strict=True)],
        }


@torch.no_grad()
def sample_sequences(
    model: DenseVideoModel, batch: dict[str, Any], k: int, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` sequences sampled per video ([B*k, L], video-major) and one greedy
    ([B, L]), both under the time grammar and without dropout; decoder start
    first, pad after ``</s>``."""
    from transformers import DynamicCache, EncoderDecoderCache, LogitsProcessorList
    from transformers.modeling_outputs import BaseModelOutput

    was_training = model.training
    model.eval()
    try:
        hidden, mask = model.encode(**model_inputs(batch))
        grammar = make_grammar(model, DecodingOptions(method="greedy"))
        lm = model.lm
        common = dict(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            max_new_tokens=max_length,
            logits_processor=LogitsProcessorList([grammar]),
            decoder_start_token_id=lm.config.decoder_start_token_id,
            eos_token_id=lm.config.eos_token_id,
            pad_token_id=lm.config.pad_token_id,
        )
        greedy = lm.generate(
            **common,
            do_sample=False,
            num_beams=1,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
        sampled = lm.generate(
            **common,
            do_sample=True,
            top_k=0,
            top_p=1.0,
            temperature=1.0,
            num_return_sequences=k,
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        )
    finally:
        model.train(was_training)
    return _ids(sampled), _ids(greedy)


def _ids(out: Any) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.sequences


def policy_gradient_loss(
    net: torch.nn.Module,
    batch: dict[str, Any],
    sequences: torch.Tensor,
    advantage: torch.Tensor,
    k: int,
    eos_id: int,
) -> tuple[torch.Tensor, int]:
    """-advantage x log p(sequence), averaged over the sequences' tokens, with the
    sequences [B*k, L] (decoder start first) teacher-forced through ``net`` on each
    video's inputs repeated ``k`` times; and the token count."""
    labels = sequences[:, 1:].clone()
    ended = (labels == eos_id).long().cumsum(1) - (labels == eos_id).long() > 0
    labels[ended] = IGNORE_INDEX  # after the first </s> (which is kept)
    inputs = {k_: v.repeat_interleave(k, 0) for k_, v in model_inputs(batch).items()}
    logits = net(labels, **inputs)
    logp = torch.log_softmax(logits.float(), dim=-1)
    valid = labels != IGNORE_INDEX
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    per_sequence = (picked * valid).sum(1)
    n_tokens = int(valid.sum())
    loss = -(advantage * per_sequence).sum() / max(n_tokens, 1)
    return loss, n_tokens
