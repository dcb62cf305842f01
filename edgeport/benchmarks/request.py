"""What one ``edgeport bench`` is asked to measure: built once from its options (edgeport/cli/bench.py),
checked when built, then read by the job (benchmarks/job.py) instead of a long list of arguments."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeport.benchmarks.footprint import check_cold_starts
from edgeport.benchmarks.options import check_given_inputs, check_threads
from edgeport.benchmarks.pool.devices import PoolChoice
from edgeport.benchmarks.records import BenchSettings, RuntimeChoice
from edgeport.benchmarks.session import Shapes
from edgeport.benchmarks.ssh_device import RemoteDevice
from edgeport.benchmarks.sustained import check_sustained
from edgeport.errors import ConfigError


@dataclass(frozen=True)
class TorchModel:
    """``edgeport bench --torch``: a PyTorch model built from its spec, with fp32 weights from safetensors."""

    spec: str  # a model spec (cnn:width=2) or package.module:factory
    weights: str  # the .safetensors file
    num_classes: int | None = None  # for factories that need it
    engine: str | None = None  # the torch quantized engine to select (x86, fbgemm, qnnpack, onednn)


@dataclass(frozen=True)
class BenchRequest:
    """One ``edgeport bench``: MODEL.onnx (or ``torch``), the settings every measurement starts from, with
    ``settings.runtime`` the runtime MODEL runs on, the batch and thread sweep, the inputs, and where the
    result goes. Refused when built if the threads are too many or --inputs meets --batch or --shape."""

    model: str | None  # MODEL.onnx; None with ``torch``
    settings: BenchSettings = BenchSettings()
    threads: tuple[int, ...] = (1,)
    batches: tuple[int, ...] | None = None  # --batch; None: the batch --shape gives (or the model fixes), else 1
    shapes: Shapes = field(default_factory=dict)  # --shape, used as given (the batch axis may be N)
    inputs_path: str | None = None  # --inputs: real inputs, which fix every shape; --batch of their samples
    output: str | None = None  # -o: the result file
    vs: str | None = None  # --vs as given: OTHER.onnx, or OTHER.onnx@runtime[/precision]
    margin: float = 0.0  # with --vs: see compare()
    # --runtime all: MODEL on each of these that is installed here, each compared with the first
    # (onnxruntime); empty: MODEL on settings.runtime
    runtimes: tuple[RuntimeChoice, ...] = ()
    remote: RemoteDevice | None = None  # --remote: the device to measure on instead of this machine
    torch: TorchModel | None = None  # --torch: a PyTorch model instead of MODEL.onnx
    footprint: int | None = None  # --footprint: that many cold starts per model and runtime (footprint.py)
    sustained: float | None = None  # --sustained: seconds per setting, with drift and heat (sustained.py)
    pool: PoolChoice | None = None  # --pool: each setting on a device of the pool, several at once (pool/)

    def __post_init__(self) -> None:
        check_threads(self.threads, self.remote is not None or self.pool is not None)
        self._check_pool()
        check_given_inputs(self.inputs_path, self.shapes)
        if self.footprint is not None:
            check_cold_starts(self.footprint)
            if self.torch is not None:
                raise ConfigError("--footprint measures ONNX models on their runtime; --torch has none")
        check_sustained(self.sustained)
        if self.sustained is not None:
            if self.torch is not None:
                raise ConfigError("--sustained measures ONNX models on their runtime: not with --torch")
            if self.settings.duration_s is not None:
                raise ConfigError("--sustained SECONDS is how long the run measures: drop --duration")

    def _check_pool(self) -> None:
        if self.pool is None:
            return
        if self.remote is not None or self.torch is not None:
            raise ConfigError("--pool measures ONNX models on the pool's devices: not with --remote or --torch")
        if self.settings.duration_s is not None or self.settings.warmup_s is not None:
            raise ConfigError("--pool takes counts: use --iterations and a --warmup count")
