"""The quantization backends. Adding one is one module here plus its line below (the registry line):
importing the module registers it (``@register_backend``) with its config type."""

from __future__ import annotations

from edgeport.errors import ConfigError
from edgeport.quantize.backends import nncf_onnx as nncf_onnx  # registers nncf (imports nncf when used)
from edgeport.quantize.backends import ort_dynamic as ort_dynamic  # registers ort-dynamic
from edgeport.quantize.backends import ort_static as ort_static  # registers ort-static
from edgeport.quantize.backends import torch_fx as torch_fx  # registers torch-fx, torch-fx-qat
from edgeport.quantize.backends import torch_pt2e as torch_pt2e  # registers torch-pt2e
from edgeport.quantize.registry import BACKENDS, QuantBackend


def list_backends() -> list[str]:
    return sorted(BACKENDS)


def get_backend(name: str) -> QuantBackend:
    if name not in BACKENDS:
        raise ConfigError(f"unknown quantization backend {name!r}; expected one of {', '.join(sorted(BACKENDS))}")
    backend: QuantBackend = BACKENDS[name]()
    return backend


__all__ = ["get_backend", "list_backends"]
