"""Which stages a candidate needs, and their content-addressed cache keys.

A key hashes the stage's own settings plus the keys of the stages it reads, down to the
dataset's fingerprint and the package versions, so two candidates that share a student share
its training, export and (with equal settings) quantization.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeport.config import RunConfig
from edgeport.core.artifacts import sha256_file
from edgeport.core.versions import package_versions
from edgeport.search.cache import stage_key
from edgeport.search.space import Candidate

_VERSIONED = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "numpy", "edgeport")


@dataclass(frozen=True)
class StageTask:
    stage: str
    key: str
    inputs: dict[str, str]  # stage name -> key of the entry it reads
    config: dict
    quant_config: dict | None = None

    def payload(self, cache: Path, logits_cache: Path) -> dict:
        task = {
            "stage": self.stage,
            "key": self.key,
            "inputs": self.inputs,
            "config": self.config,
            "cache": str(cache),
            "logits_cache": str(logits_cache),
        }
        if self.quant_config is not None:
            task["quant_config"] = self.quant_config
        return task


@dataclass(frozen=True)
class TrialPlan:
    candidate: Candidate
    data_key: str
    chain: list[StageTask] = field(default_factory=list)  # in order; the last one makes the artifact

    @property
    def artifact_stage(self) -> StageTask:
        return self.chain[-1]

    def student_task(self) -> StageTask:
        return next(t for t in self.chain if t.stage == "student")


def student_stage(config: RunConfig, teacher_key: str, data_key: str) -> StageTask:
    student = config.student.model_dump(exclude={"no_kd_baseline", "kd_seeds"})
    key = stage_key("student", student=student, teacher=teacher_key, data=data_key, seed=config.seed)
    return StageTask("student", key, {"teacher": teacher_key}, config.model_dump())


def plan_trial(candidate: Candidate, data_fingerprint: str) -> TrialPlan:
    config = candidate.config
    versions = {k: v for k, v in package_versions().items() if k in _VERSIONED}
    data_key = stage_key(
        "data", data=config.data.model_dump(), seed=config.seed, fingerprint=data_fingerprint, versions=versions
    )
    weights = config.teacher.weights
    weights_sha = sha256_file(weights) if weights and Path(weights).is_file() else None
    teacher = StageTask(
        "teacher",
        stage_key(
            "teacher", teacher=config.teacher.model_dump(), data=data_key, seed=config.seed, weights_sha256=weights_sha
        ),
        {},
        config.model_dump(),
    )
    student = student_stage(config, teacher.key, data_key)
    export = StageTask(
        "export",
        stage_key("export", export=config.export.model_dump(), student=student.key),
        {"student": student.key, "teacher": teacher.key},  # the teacher's hash goes into the ONNX lineage
        config.model_dump(),
    )
    chain = [teacher, student, export]
    quant_config = candidate.quant_config  # None: the fp32 model is the candidate (backend "none")
    if quant_config is not None:
        quant = quant_config.describe()
        key = stage_key(
            "quantize",
            quant=quant,
            max_accuracy_drop=config.max_accuracy_drop,
            export=export.key,
            student=student.key,
            teacher=teacher.key,
            seed=config.seed,
            runtime=[config.bench.runtime, config.bench.precision],  # judged (and auto's recipes ranked) there
        )
        chain.append(
            StageTask(
                "quantize",
                key,
                {"teacher": teacher.key, "student": student.key, "export": export.key},
                config.model_dump(),
                quant_config.model_dump(mode="json"),  # the worker's full config, guards included
            )
        )
    return TrialPlan(candidate, data_key, chain)
