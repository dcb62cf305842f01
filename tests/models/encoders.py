"""A BERT-style encoder built from a `transformers` config with random weights (nothing downloaded),
exported to ONNX with its three int64 inputs, and padded-sentence feeds for it. Shared by the tests
and perf/auto_recipes.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def export_bert_encoder(
    path: Path,
    *,
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    length: int,
    dynamo: bool = False,
) -> Path:
    """`last_hidden_state` of a seeded random BertModel, dynamic batch axis: by torch's TorchScript exporter at
    opset 17 (about 0.3 s), or with ``dynamo`` by its default dynamo exporter at opset 18 (about 3 s; its
    attention is one scaled-dot-product pattern per layer)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
    )
    bert = BertModel(config).eval()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.randint(0, vocab, (1 + dynamo, length))  # dynamo specialises a batch axis of 1
    shapes = {"dynamic_shapes": {n: {0: torch.export.Dim("batch")} for n in NAMES}} if dynamo else {}
    torch.onnx.export(
        Encoder(),
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(path),
        dynamo=dynamo,
        opset_version=18 if dynamo else 17,
        input_names=NAMES,
        output_names=["last_hidden_state"],
        **(shapes or {"dynamic_axes": {n: {0: "batch"} for n in NAMES}}),
    )
    return path


def save_padded_sentences(path: Path, count: int, length: int, vocab: int, rng: np.random.Generator) -> None:
    """Random token ids with the attention mask cut somewhere in the second half (padded sentences:
    the mask path matters), token types all 0."""
    mask = np.ones((count, length), np.int64)
    for row in range(count):
        mask[row, rng.integers(length // 2, length) :] = 0
    tokens = rng.integers(0, vocab, (count, length)).astype(np.int64)
    np.savez(path, input_ids=tokens, attention_mask=mask, token_type_ids=0 * tokens)
