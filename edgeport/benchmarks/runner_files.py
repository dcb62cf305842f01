"""What the runner (remote_runner.py) reads besides the model, as the bytes of its two files: the inputs as
an uncompressed .npz and the settings as JSON. Written beside it here (footprint.py) or packed for a device
(remote.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

INPUTS, SETTINGS = "inputs.npz", "settings.json"


def runner_files(inputs: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> dict[str, bytes]:
    buffer = io.BytesIO()
    np.savez(buffer, **inputs)  # type: ignore[arg-type]  # numpy's stub types **kwds as its own options
    return {INPUTS: buffer.getvalue(), SETTINGS: json.dumps(dict(settings)).encode()}
