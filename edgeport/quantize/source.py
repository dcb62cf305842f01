"""What a backend quantizes: a fp32 ONNX file, a PyTorch model, or both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgeport.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, eq=False)
class TrainingData:
    """What quantization-aware training fine-tunes on: labelled images, and the teacher's logits for
    the same images when the KD loss is to be kept."""

    x: np.ndarray
    y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    teacher_logits: np.ndarray | None = None
    temperature: float = 4.0
    alpha: float = 0.9
    kd_loss: Literal["standardized", "hinton"] = "standardized"  # distill.loss: the loss the student was distilled with

    def __post_init__(self) -> None:
        if len(self.x) == 0 or len(self.x) != len(self.y) or len(self.val_x) != len(self.val_y):
            raise ConfigError(
                f"training data needs as many labels as images (got {len(self.x)} images, {len(self.y)} labels)"
            )
        if self.teacher_logits is not None and len(self.teacher_logits) != len(self.x):
            raise ConfigError(f"{len(self.teacher_logits)} teacher logits for {len(self.x)} training images")


@dataclass(frozen=True)
class ModelSource:
    """ONNX backends read ``onnx_path``; torch backends need ``torch_model`` (an nn.Module in eval mode);
    quantization-aware training also needs ``training``."""

    onnx_path: Path | None = None
    torch_model: Any = None
    training: TrainingData | None = None

    def __post_init__(self) -> None:
        if self.onnx_path is None and self.torch_model is None:
            raise ConfigError("nothing to quantize: give a fp32 ONNX file or a torch model")
        if self.onnx_path is not None:
            object.__setattr__(self, "onnx_path", Path(self.onnx_path))
