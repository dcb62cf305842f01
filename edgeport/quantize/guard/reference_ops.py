"""numpy versions of the onnxruntime contrib ops edgeport writes, for onnx's reference evaluator.

The guard runs every int8 file a second time in onnx's reference evaluator, an independent runtime, to
catch a kernel that computes a file wrongly. Attention fused for onnxruntime (transforms/attention_fusion.py)
writes MultiHeadAttention and BiasGelu of the com.microsoft domain, which that evaluator does not know; here
they are written from onnxruntime's operator documentation (ContribOperators.md), for the forms the fusion
writes: 3-D query, key and value, an optional packed bias, key padding mask and attention bias, no past
state. Another form raises NotImplementedError, and the guard reports the reference run as not made.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun
from scipy.special import erf


def _heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """[B, S, N*H] -> [B, N, S, H]."""
    batch, length, width = x.shape
    return x.reshape(batch, length, num_heads, width // num_heads).transpose(0, 2, 1, 3)


def _padding_bias(mask: np.ndarray, batch: int, keys: int, fill: float) -> np.ndarray:
    """A key padding mask ([B, L] of 1 = attend, 0 = not) as an additive bias [B, 1, 1, L]."""
    if mask.shape != (batch, keys):
        raise NotImplementedError(f"MultiHeadAttention key_padding_mask of shape {mask.shape} (only [B, L] here)")
    return np.where(mask.astype(bool), 0.0, fill).reshape(batch, 1, 1, keys)


class MultiHeadAttention(OpRun):
    op_domain = "com.microsoft"

    def _run(  # noqa: PLR0913 (the op's inputs and attributes, as the evaluator passes them)
        self,
        query,
        key=None,
        value=None,
        bias=None,
        key_padding_mask=None,
        attention_bias=None,
        *past,
        num_heads=None,
        scale=None,
        mask_filter_value=None,
        unidirectional=None,
    ):
        if key is None or value is None or query.ndim != 3 or key.ndim != 3 or any(p is not None for p in past):
            raise NotImplementedError("MultiHeadAttention with packed inputs or past state")
        if bias is not None:  # [D (query) + D (key) + Dv (value)]
            width = query.shape[-1]
            query, key, value = query + bias[:width], key + bias[width : 2 * width], value + bias[2 * width :]
        q, k, v = (_heads(x.astype(np.float64), num_heads) for x in (query, key, value))
        head_size = q.shape[-1]
        scores = (q @ k.transpose(0, 1, 3, 2)) * (scale if scale else 1.0 / np.sqrt(head_size))
        fill = mask_filter_value if mask_filter_value is not None else -10000.0
        if key_padding_mask is not None:
            scores = scores + _padding_bias(key_padding_mask, q.shape[0], k.shape[2], fill)
        if attention_bias is not None:
            scores = scores + attention_bias
        if unidirectional:  # a query sees the keys up to its own position
            scores = scores + np.triu(np.full(scores.shape[-2:], -np.inf), k=1 + k.shape[2] - q.shape[2])
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probabilities = scores / scores.sum(axis=-1, keepdims=True)
        out = (probabilities @ v).transpose(0, 2, 1, 3)
        return (out.reshape(out.shape[0], out.shape[1], -1).astype(query.dtype),)


def _gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(x.dtype)


class BiasGelu(OpRun):
    op_domain = "com.microsoft"

    def _run(self, x, bias):
        return (_gelu(x + bias),)


class Gelu(OpRun):
    op_domain = "com.microsoft"

    def _run(self, x, approximate=None):  # the evaluator fills ai.onnx Gelu's attribute in, which this op lacks
        return (_gelu(x),)


CONTRIB_OPS = [MultiHeadAttention, BiasGelu, Gelu]

__all__ = ["CONTRIB_OPS"]
