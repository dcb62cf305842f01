"""Model checkpoints in safetensors, with the model spec stored in the file's metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from edgeport.core.artifacts import atomic_write_bytes
from edgeport.errors import ModelError
from edgeport.models.registry import ModelSpec, build_model


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, spec: ModelSpec, in_channels: int, num_classes: int, image_size: int
) -> Path:
    """Write ``model``'s weights; the metadata is enough to rebuild the architecture."""
    path = Path(path)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    # One metadata key: safetensors writes its metadata map in hash order, so several keys
    # would make identical weights produce byte-different files.
    meta = {
        "edgeport": json.dumps(
            {"spec": spec.describe(), "in_channels": in_channels, "num_classes": num_classes, "image_size": image_size},
            sort_keys=True,
        )
    }
    atomic_write_bytes(path, save(state, metadata=meta))
    return path


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a safetensors checkpoint into ``model``; every key must match."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{path}: weights do not fit the model ({first})") from exc
    return model


def load_checkpoint_model(
    path: str | os.PathLike, spec: ModelSpec, in_channels: int, num_classes: int, image_size: int
) -> nn.Module:
    model = build_model(spec, in_channels, num_classes, image_size)
    load_weights(model, path)
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
