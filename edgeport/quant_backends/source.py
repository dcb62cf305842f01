"""What a backend quantizes: a fp32 ONNX file, a PyTorch model, or both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeport.errors import ConfigError


@dataclass(frozen=True)
class ModelSource:
    """ONNX backends read ``onnx_path``; torch backends need ``torch_model`` (an nn.Module in eval mode)."""

    onnx_path: Path | None = None
    torch_model: Any = None

    def __post_init__(self) -> None:
        if self.onnx_path is None and self.torch_model is None:
            raise ConfigError("nothing to quantize: give a fp32 ONNX file or a torch model")
        if self.onnx_path is not None:
            object.__setattr__(self, "onnx_path", Path(self.onnx_path))
