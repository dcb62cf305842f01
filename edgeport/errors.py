"""One error hierarchy for edgeport.

Every failure a user can cause (bad config, missing data, a model that does not
export) is an ``EdgeportError``; the CLI turns it into a one-line message and
exit code 2. Third-party exceptions are wrapped once, at the stage boundary,
with ``raise XError(...) from exc`` so the original traceback survives under
``--debug``.
"""


class EdgeportError(Exception):
    """Base class of every error edgeport raises on purpose."""

    exit_code = 2  # bad input or usage


class ConfigError(EdgeportError):
    """A setting, option or project file is invalid."""


class DataError(EdgeportError):
    """A dataset is missing, malformed or inconsistent."""


class ModelError(EdgeportError):
    """A model name, spec, factory or checkpoint is unusable."""


class TrainingError(EdgeportError):
    """Training or distillation failed (for example, the loss became NaN)."""


class ExportError(EdgeportError):
    """A model could not be exported to ONNX or the export failed its checks."""


class QuantizationError(EdgeportError):
    """A quantization backend failed or produced an invalid artifact."""


class BenchmarkError(EdgeportError):
    """A latency measurement could not be taken."""


class DeviceUnreachable(BenchmarkError):
    """A remote device stopped answering (no connection, connection lost, no answer in time): the device
    failed, not the measurement, so a device pool moves the work to another device."""


class ArtifactError(EdgeportError):
    """An output folder or artifact cannot be written or read."""


class CheckFailedError(EdgeportError):
    """The work ran, but its result fails a check (for example, nothing in the model was quantized).

    Exit code 1, like a failed gate: the input was acceptable, the outcome is not.
    """

    exit_code = 1
