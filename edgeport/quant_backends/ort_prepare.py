"""onnxruntime's quantization pre-processing (shape inference and graph clean-up), run in a
private working folder.

When its symbolic shape inference gives up (an op it does not know), onnxruntime saves
``sym_shape_infer_temp.onnx`` (and its external data) into the current working folder, which left
stray files wherever the user ran edgeport. Running it with the working folder set to our own
temporary folder keeps those files there, and they go when it goes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeport.errors import QuantizationError


@contextmanager
def working_folder(folder: Path) -> Iterator[None]:
    # The working folder belongs to the process: edgeport quantizes in one thread per process
    # (the search runs stages in worker processes), so nothing else resolves relative paths meanwhile.
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def pre_process(fp32_path: Path, prepared: Path, skip_symbolic_shape: bool = False) -> None:
    """``quant_pre_process`` of ``fp32_path`` into ``prepared``, with scratch files kept in prepared's folder."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = Path(fp32_path).resolve(), Path(prepared).resolve()
    try:
        with working_folder(target.parent):
            quant_pre_process(str(source), str(target), skip_symbolic_shape=skip_symbolic_shape)
    except Exception as exc:  # ORT raises plain Exceptions from its shape inference
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantizationError(f"{fp32_path}: ORT quantization pre-processing failed ({first})") from exc
