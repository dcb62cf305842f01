"""OpenVINO as a benchmark runtime: the ONNX artifact read directly by ``openvino`` (no conversion step),
compiled for the CPU with the latency settings a deployment uses, behind the small part of the
onnxruntime session interface the harness calls (``run``, ``get_inputs``). Every statistic, warm-up,
round and raw sample is then the same code for both runtimes.

Why a second runtime at all: on an Intel Xeon with AVX-512 VNNI and AMX the same int8 QDQ file of
resnet18 ran at 0.33x of onnxruntime's fp32 p50 in onnxruntime and 0.11x in OpenVINO; a latency target
is a device *and* the runtime that will execute the artifact there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from edgeport.benchmarks.records import RuntimeChoice
from edgeport.benchmarks.remote_runner import openvino_config
from edgeport.core.scratch import scratch_folder
from edgeport.errors import BenchmarkError

INSTALL = "pip install 'edgeport[openvino]'"
# --precision -> OpenVINO's INFERENCE_PRECISION_HINT. None: OpenVINO's own default for the CPU, which
# is bf16 where the CPU has AMX/AVX-512 BF16 (a reduced-precision fp32 model, said in the fingerprint).
PRECISIONS = {"f32": "f32", "bf16": "bf16", "f16": "f16"}
# OpenVINO element type name -> onnxruntime's type string, which the input synthesis and checks read
_TYPES = {
    "f32": "tensor(float)",
    "f16": "tensor(float16)",
    "f64": "tensor(double)",
    "i64": "tensor(int64)",
    "i32": "tensor(int32)",
    "i8": "tensor(int8)",
    "u8": "tensor(uint8)",
    "boolean": "tensor(bool)",
}


# Where compiled models are kept while ``compiled_models_cached`` is active (None: compile every time).
_CACHE_DIR: ContextVar[str | None] = ContextVar("edgeport_openvino_cache_dir", default=None)


@contextmanager
def compiled_models_cached() -> Iterator[None]:
    """Within this block, OpenVINO keeps each model it compiles (its model cache, ``CACHE_DIR``, in a
    temporary folder removed on leaving) and loads it again from there instead of compiling it anew.

    Why: an interleaved measurement takes fresh sessions every round (latency.py), and quantization judges
    and times the same files several times. Compiling MiniLM took 0.57 s (its int8 QDQ file 1.33 s) and
    loading the compiled blob 0.16 s (0.35 s), on an AMD EPYC (AVX2); the blob is what compiling gives,
    placed in fresh memory each time, so the measurement is unchanged. Nested blocks share the outer
    folder. Never around a figure of session creation that a user reads as the cold start."""
    if _CACHE_DIR.get() is not None:
        yield
        return
    with scratch_folder("openvino-cache") as folder:  # a SIGKILLed process's is removed by the next one
        token = _CACHE_DIR.set(str(folder))
        try:
            yield
        finally:
            _CACHE_DIR.reset(token)


def openvino_module() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BenchmarkError(f"runtime 'openvino' needs the openvino package: {INSTALL}") from exc
    return openvino


def openvino_version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__)


@functools.lru_cache(maxsize=1)
def cpu_default_precision() -> str:
    """The precision OpenVINO's CPU plugin runs a fp32 model at when no hint is given ("f32", or "bf16" on
    CPUs with AMX or AVX-512 BF16): read from the plugin, never assumed from the CPU's name; "unknown" where
    the plugin cannot say (both fp32 baselines are measured then)."""
    try:
        hint = openvino_module().Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    except Exception:  # OpenVINO raises RuntimeError subclasses; the sessions that fail say more
        return "unknown"
    return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)


def fp32_openvino_choices() -> list[RuntimeChoice]:
    """The fp32 baselines on OpenVINO: at f32 and at its CPU default; the default alone where that is f32
    (no AMX or AVX-512 BF16), which would otherwise be the same compiled model judged and timed twice
    (MiniLM's choice of runtime spent 4 s of its 79 s on the copy, AMD EPYC Zen 3)."""
    default = RuntimeChoice("openvino")
    return [default] if cpu_default_precision() == "f32" else [RuntimeChoice("openvino", "f32"), default]


@dataclass(frozen=True)
class _Input:
    """An onnxruntime NodeArg look-alike: name, shape (ints, or strings for dynamic dims), type."""

    name: str
    shape: list
    type: str


class OpenVinoSession:
    """One compiled model and one infer request: ``run(None, feeds)`` is one synchronous inference."""

    def __init__(self, path: str | os.PathLike[str], threads: int, precision: str | None) -> None:
        ov = openvino_module()
        core = ov.Core()
        config = openvino_config(threads, PRECISIONS[precision] if precision is not None else None)
        if _CACHE_DIR.get() is not None:
            config["CACHE_DIR"] = _CACHE_DIR.get()
        try:
            self.model = core.read_model(str(path))
            self.compiled = core.compile_model(self.model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for unsupported models
            text = " ".join(str(exc).split())[:300]
            raise BenchmarkError(f"{path}: OpenVINO cannot load the model ({text})") from exc
        self.request = self.compiled.create_infer_request()
        own = [port.get_any_name() for port in self.compiled.outputs]
        self.output_names = _onnx_output_names(path) or own
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)

    def get_inputs(self) -> list[_Input]:
        inputs = []
        for port in self.model.inputs:
            shape = [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]
            kind = _TYPES.get(port.get_element_type().get_type_name(), port.get_element_type().get_type_name())
            inputs.append(_Input(port.get_any_name(), shape, kind))
        return inputs

    def get_outputs(self) -> list[_Input]:
        return [_Input(name, [], "") for name in self.output_names]

    def run(self, _output_names: Any, feeds: dict) -> list:
        results = self.request.infer(feeds)
        return [results[port] for port in self.compiled.outputs]


def _onnx_output_names(path: str | os.PathLike[str]) -> list[str]:
    """The ONNX graph's output names, in order. OpenVINO keeps the outputs' order but may report another
    tensor's name for one (the input of an Identity it removed), and outputs are compared by name."""
    try:
        status = os.stat(path)
    except OSError:
        return []
    # read once per file version: an interleaved measurement opens every file each round, and parsing
    # MiniLM's int8 file took 0.1 s each time (0.6 s of its runtime choice, AMD EPYC Zen 3)
    return list(_output_names_of(os.fspath(path), status.st_mtime_ns, status.st_size))


@functools.lru_cache(maxsize=64)
def _output_names_of(path: str, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    import onnx

    try:
        return tuple(o.name for o in onnx.load(path, load_external_data=False).graph.output)
    except Exception:  # not an ONNX file (an OpenVINO IR, say): OpenVINO's own names
        return ()
