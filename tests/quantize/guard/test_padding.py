"""The guard leaves padding positions out (guard/padding.py): an encoder whose int8 outputs differ from
fp32 only where the attention mask says "padding" is faithful; the same difference at real positions
still fails; and only a 0/1 input named as a mask, with padding in it, counts as one."""

from __future__ import annotations

import numpy as np

from edgeport.quantize.guard.judge import judge
from edgeport.quantize.guard.padding import padding_mask, without_padding
from edgeport.quantize.tolerance import Tolerance


def _mask(samples: int = 6, length: int = 10) -> np.ndarray:
    mask = np.ones((samples, length), np.int64)
    for row in range(samples):
        mask[row, 5 + row % 4 :] = 0  # padded from a different position in each sentence
    return mask


def test_the_mask_is_the_0_1_input_named_as_one_with_padding_in_it():
    mask = _mask()
    ids = np.random.default_rng(0).integers(0, 99, mask.shape)
    found = padding_mask({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)})
    assert found is not None and found.dtype == bool and np.array_equal(found, mask.astype(bool))
    assert padding_mask({"input_ids": ids, "attention_mask": np.ones_like(mask)}) is None  # nothing padded
    assert padding_mask({"token_type_ids": mask}) is None  # 0/1, but not named as a mask: segments
    assert padding_mask({"attention_mask": mask * 2}) is None  # not 0/1
    assert padding_mask({"attention_mask": mask, "input_mask": mask}) is None  # which one: none
    per_sample = padding_mask({"attention_mask": mask[:, None, :]})  # per-sample slices of batch 1
    assert per_sample is not None and per_sample.shape == mask.shape


def test_only_outputs_laid_out_like_the_mask_lose_their_padding():
    mask = _mask().astype(bool)
    tokens = np.ones((6, 10, 4))
    zeroed, left_out = without_padding(tokens, mask)
    assert left_out == int((~mask).sum()) and zeroed[~mask].sum() == 0 and zeroed[mask].sum() == tokens[mask].sum()
    pooled = np.ones((6, 4))
    assert without_padding(pooled, mask) == (pooled, 0)  # no positions axis
    other = np.ones((6, 9, 4))
    assert without_padding(other, mask)[1] == 0  # another length: not these positions


def test_a_difference_only_at_padding_positions_is_no_loss_but_at_real_ones_it_is():
    rng = np.random.default_rng(1)
    mask = _mask()
    fp32 = rng.standard_normal((6, 10, 16))
    garbage_at_padding = fp32.copy()
    garbage_at_padding[~mask.astype(bool)] = rng.standard_normal((int((mask == 0).sum()), 16)) * 50
    tolerance = Tolerance(min_cosine=0.99)
    without = judge({"h": fp32}, {"h": garbage_at_padding}, None, tolerance, "val")
    assert not without.within_tolerance  # the guard before: padding judged like words
    with_mask = judge({"h": fp32}, {"h": garbage_at_padding}, None, tolerance, "val", padding=mask.astype(bool))
    assert with_mask.within_tolerance and with_mask.outputs[0]["padding_positions_left_out"] == int((mask == 0).sum())

    garbage_at_words = fp32.copy()
    garbage_at_words[mask.astype(bool)] += rng.standard_normal((int(mask.sum()), 16))
    assert not judge(
        {"h": fp32}, {"h": garbage_at_words}, None, tolerance, "val", padding=mask.astype(bool)
    ).within_tolerance
