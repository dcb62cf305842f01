"""Small building blocks shared by the tests (also a user-model factory for the registry tests)."""

from __future__ import annotations

import numpy as np
from torch import nn


def tiny_factory(in_channels: int, num_classes: int, hidden: int = 8) -> nn.Module:
    """A user model reachable as 'tests.helpers:tiny_factory'."""
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(hidden, num_classes))


def not_a_module(in_channels: int, num_classes: int):
    return "not a model"


def write_npz(path, n=60, classes=3, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.random((n, channels, size, size)).astype(np.float32)
    x[:, :, : size // 2] += y[:, None, None, None] * 0.5  # learnable signal: class shifts the top half
    np.savez(path, x=x, y=y)
    return x, y
