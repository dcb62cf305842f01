"""Versions of the packages an artifact depends on, recorded in every manifest."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "numpy", "scikit-learn", "safetensors")


def package_versions() -> dict[str, str]:
    versions = {
        "edgeport": metadata.version("edgeport"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
