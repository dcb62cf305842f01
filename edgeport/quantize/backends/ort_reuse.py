"""Work that every onnxruntime quantization of one model repeats, done once per auto or fallback run.

auto tries several recipes on one model, and the fallback quantizes it again with more layers in float
at each step. Every one of those ran onnxruntime's pre-processing (shape inference, graph clean-up) and
ort-static's calibration again, on the same file and the same samples: on all-MiniLM-L6-v2 about 3 s and
2 s of each 6.5 s re-quantization (AMD EPYC Zen 1, 2 cores). Within ``reuse(folder)`` both results are
kept in ``folder`` and found again by what they depend on:

- the pre-processed model (its attention fused first: transforms/attention_fusion.py) by the bytes of the
  fp32 file (its external data included);
- the bytes of intermediate tensors one calibration sample takes (ort_calibrate.py), likewise;
- the calibration ranges by the bytes of the prepared model, the calibration samples and every setting
  the calibrator reads (method, percentile, op types calibrated, batch and chunk), stored in
  onnxruntime's own calibration cache format (``quantize_static(calibration_cache_path=...)``);
- the weights' scales, zero points and int8 values, in memory (ort_weight_memo.py).

Outside ``reuse`` nothing is kept. The folder belongs to the run that opened it (auto's staging
folder), so nothing outlives the command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

import numpy as np

from edgeport.errors import QuantizationError
from edgeport.quantize.backends.ort_prepare import data_file, external_data_locations, has_external_data, pre_process
from edgeport.quantize.backends.ort_weight_memo import weights_remembered
from edgeport.quantize.transforms.attention_fusion import NOTE as FUSION_NOTE
from edgeport.quantize.transforms.attention_fusion import fused_model

_FOLDER: ContextVar[Path | None] = ContextVar("edgeport_ort_reuse", default=None)
_CHUNK = 1 << 22
T = TypeVar("T")


@contextlib.contextmanager
def reuse(folder: Path) -> Iterator[None]:
    """Keep pre-processed models and calibration ranges in ``folder`` meanwhile. Nested, the outer
    folder stays in use: a fallback inside auto finds what auto's recipes made."""
    if _FOLDER.get() is not None:
        yield
        return
    folder = Path(folder).resolve()  # absolute: pre-processing changes the working directory meanwhile
    folder.mkdir(parents=True, exist_ok=True)
    token = _FOLDER.set(folder)
    try:
        with weights_remembered():
            yield
    finally:
        _FOLDER.reset(token)


def _file_digest(path: Path, digest: hashlib._Hash) -> None:
    with open(path, "rb") as stream:
        while block := stream.read(_CHUNK):
            digest.update(block)


def model_digest(path: Path) -> str:
    """The bytes of an ONNX file and of every external data file it names."""
    digest = hashlib.sha256()
    _file_digest(Path(path), digest)
    for location in external_data_locations(path):
        digest.update(location.encode())
        _file_digest(Path(path).parent / location, digest)
    return digest.hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.data.cast("B"))  # contiguous numeric arrays: no copy
    return digest.hexdigest()


def _copy_model(source: Path, target: Path) -> None:
    """``source`` and its external data file (``data_file``), under ``target``'s name."""
    shutil.copyfile(source, target)
    if data_file(source).exists():
        shutil.copyfile(data_file(source), data_file(target))


def _prepared(fp32_path: Path, prepared: Path, samples: Mapping[str, np.ndarray] | None) -> dict:
    """The attention fused (checked on ``samples``: attention_fusion.py), then onnxruntime's pre-processing."""
    with tempfile.TemporaryDirectory(dir=Path(prepared).parent, prefix=".fused-") as folder:
        fused, notes = fused_model(Path(fp32_path), Path(folder), samples, has_external_data(fp32_path))
        if fused is not None:
            try:
                return {**notes, **pre_process(fused, prepared)}
            except QuantizationError as exc:  # its shape inference on the contrib ops: quantize the model unfused
                notes = {FUSION_NOTE: f"not applied: onnxruntime's pre-processing failed on the fused model ({exc})"}
        return {**notes, **pre_process(fp32_path, prepared)}


def prepare(fp32_path: Path, prepared: Path, samples: Mapping[str, np.ndarray] | None = None) -> dict:
    """The model at ``fp32_path`` pre-processed and its attention fused into ``prepared``, or a copy of the same
    model prepared earlier in this ``reuse`` folder (within one run every recipe has the same ``samples``).
    The copy is the caller's to change (the backends shield it in place)."""
    folder = _FOLDER.get()
    if folder is None:
        return _prepared(fp32_path, prepared, samples)
    # the external data file is named after the model file, so the key holds the name too
    stored = folder / f"prepared-{model_digest(Path(fp32_path))[:24]}" / Path(prepared).name
    notes_file = stored.with_suffix(".notes.json")
    if notes_file.exists():
        _copy_model(stored, Path(prepared))
        return json.loads(notes_file.read_text())
    notes = _prepared(fp32_path, prepared, samples)
    stored.parent.mkdir(exist_ok=True)
    _copy_model(Path(prepared), stored)
    notes_file.write_text(json.dumps(notes))  # last: a half-stored model is never found
    return notes


def _key_digest(key: Mapping) -> str:
    """A short name for a key of digests and settings."""
    return hashlib.sha256(json.dumps(dict(key), sort_keys=True, default=str).encode()).hexdigest()[:24]


def remembered(what: str, key: Mapping, compute: Callable[[], T]) -> T:
    """``compute()``, or its JSON-able value from earlier in this ``reuse`` folder under the same ``key``
    (whose values are digests and settings); computed every time outside ``reuse``."""
    folder = _FOLDER.get()
    if folder is None:
        return compute()
    stored = folder / f"{what}-{_key_digest(key)}.json"
    if stored.exists():
        return json.loads(stored.read_text())
    value = compute()
    stored.write_text(json.dumps(value))
    return value


def ranges_file(prepared: str, calibration: Mapping[str, np.ndarray], settings: Mapping) -> Path | None:
    """Where the calibration ranges of the prepared model (``model_digest``: ``prepared``) on
    ``calibration`` with ``settings`` are kept in this ``reuse`` folder (it exists once computed); None
    outside ``reuse``."""
    folder = _FOLDER.get()
    if folder is None:
        return None
    key = {"model": prepared, "calibration": arrays_digest(calibration), **settings}
    return folder / f"ranges-{_key_digest(key)}.json"


def active() -> bool:
    """Whether a ``reuse`` folder is open (a key worth computing)."""
    return _FOLDER.get() is not None


__all__ = ["active", "arrays_digest", "model_digest", "prepare", "ranges_file", "remembered", "reuse"]
