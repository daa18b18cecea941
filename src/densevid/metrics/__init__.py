"""The field's dense-captioning metrics, numerically identical to the official tools.

``evaluate(predictions, references)`` gives BLEU-1..4, METEOR, ROUGE-L, CIDEr-D,
proposal recall/precision/F1 (ranjaykrishna/densevid_eval) and SODA_c (fujiso/SODA).
"""

from densevid.metrics.backend import shared_tokenizer
from densevid.metrics.densevid import GARBAGE, MAX_PROPOSALS, TIOUS, f1_scores
from densevid.metrics.evaluate import METRICS, evaluate, evaluate_files, format_scores
from densevid.metrics.scorers import Meteor, close_shared_meteor, shared_meteor
from densevid.metrics.tokenize import PTBTokenizer, java_executable

__all__ = [
    "GARBAGE",
    "MAX_PROPOSALS",
    "METRICS",
    "TIOUS",
    "Meteor",
    "PTBTokenizer",
    "close_shared_meteor",
    "evaluate",
    "evaluate_files",
    "f1_scores",
    "format_scores",
    "java_executable",
    "shared_meteor",
    "shared_tokenizer",
]
