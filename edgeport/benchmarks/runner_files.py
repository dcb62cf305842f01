"""What the runner (remote_runner.py) reads besides the model, as the bytes of its two files: the inputs as
an uncompressed .npz and the settings as JSON. Written beside it here (footprint.py) or packed for a device
(remote.py), with the model's external data files."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import BenchmarkError

INPUTS, SETTINGS = "inputs.npz", "settings.json"


def runner_files(inputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> dict[str, bytes]:
    buffer = io.BytesIO()
    np.savez(buffer, **inputs)  # type: ignore[arg-type]  # numpy's stub types **kwds as its own options
    return {INPUTS: buffer.getvalue(), SETTINGS: json.dumps(dict(settings)).encode()}


def external_data(model: Path) -> dict[str, bytes]:
    """The files ``model`` keeps tensors in besides itself (ONNX external data, such as an exported
    transformer's MODEL.onnx.data), by name: onnxruntime on the device looks for them beside the model, so
    they travel with it. Only plain file names beside the model can be sent."""
    import onnx

    # onnx's own walk over every tensor (subgraphs included), as onnx.load_external_data_for_model does
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as exc:  # the device's runtime will say what is wrong with the model; nothing to add here
        raise BenchmarkError(f"{model}: not a readable ONNX model ({exc})") from exc
    names = sorted({ExternalDataInfo(t).location for t in _get_all_tensors(proto) if uses_external_data(t)})
    files = {}
    for name in names:
        if Path(name).name != name or name in (".", ".."):
            raise BenchmarkError(
                f"{model}: its external data {name!r} is not a file beside it; a device gets only those"
            )
        try:
            files[name] = (model.parent / name).read_bytes()
        except OSError as exc:
            raise BenchmarkError(
                f"{model}: its external data file {name} cannot be read ({exc.strerror or exc})"
            ) from exc
    return files
