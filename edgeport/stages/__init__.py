"""The stage library shared by ``edgeport run`` (one candidate) and ``edgeport search`` (many).

Each stage is a function of typed inputs returning a typed record (paths plus what was measured):
``validate``, ``prepare_data``, ``build_teacher``, ``train_student`` (KD or plain), ``export_student``,
``quantize_student`` and ``bench_settings``. ``edgeport.run`` chains them into a run folder;
the search runs the same functions into its content-addressed cache, in worker processes or Ray tasks.
"""

from edgeport.stages.data import PreparedData, batch_of, prepare_data
from edgeport.stages.export import export_student, student_lineage
from edgeport.stages.measure import bench_settings
from edgeport.stages.quantize import QuantizedStudent, quantize_student
from edgeport.stages.train import TrainedModel, build_teacher, fit, kd_config, load_trained, seeded_model, train_student
from edgeport.stages.validate import CheckedRun, validate

__all__ = [
    "CheckedRun",
    "PreparedData",
    "QuantizedStudent",
    "TrainedModel",
    "batch_of",
    "bench_settings",
    "build_teacher",
    "export_student",
    "fit",
    "kd_config",
    "load_trained",
    "prepare_data",
    "quantize_student",
    "seeded_model",
    "student_lineage",
    "train_student",
    "validate",
]
