"""The teacher and student stages: a seeded model trained (or loaded) and saved as a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeport.config import RunConfig, StudentSection, TeacherSection
from edgeport.core.artifacts import sha256_file
from edgeport.core.progress import SILENT, Progress
from edgeport.distill import KDConfig, TrainConfig, TrainData, accuracy, predict_logits, train
from edgeport.distill.trainer import TrainResult
from edgeport.models import ModelSpec, build_model
from edgeport.models.checkpoint import count_parameters, load_checkpoint_model, load_weights, save_checkpoint
from edgeport.stages.data import PreparedData


@dataclass(frozen=True)
class TrainedModel:
    """A model and the checkpoint it was saved to."""

    model: nn.Module
    spec: ModelSpec
    checkpoint: Path
    sha256: str
    parameters: int
    val_accuracy: float
    history: list[dict] | None  # None: loaded from the user's weights, not trained here
    kd: KDConfig | None = None  # the distillation it was trained with; None: plain cross-entropy


def seeded_model(spec: ModelSpec, seed: int, prepared: PreparedData) -> nn.Module:
    # Seed right before construction: a model's initial weights then depend only on the
    # seed, not on which stages ran before (the KD and no-KD students start identical).
    torch.manual_seed(seed)
    channels, classes, size = prepared.shape
    return build_model(spec, channels, classes, size)


def fit(
    model: nn.Module,
    section: TeacherSection | StudentSection,
    prepared: PreparedData,
    seed: int,
    progress: Progress = SILENT,
    description: str = "train",
    kd: KDConfig | None = None,
    t_logits: np.ndarray | None = None,
) -> TrainResult:
    """Train ``model`` with a teacher or student section's epochs, batch size and learning rate."""
    splits = prepared.splits
    cfg = TrainConfig(epochs=section.epochs, batch_size=section.batch_size, lr=section.lr, seed=seed)
    return train(
        model,
        TrainData(splits.train.x, splits.train.y, splits.val.x, splits.val.y),
        cfg,
        kd=kd,
        teacher_logits=t_logits,
        progress=progress,
        description=description,
    )


def kd_config(config: RunConfig) -> KDConfig:
    student = config.student
    return KDConfig(temperature=student.temperature, alpha=student.alpha, loss=student.kd_loss)


def _saved(model, spec, prepared, path, history, val_accuracy, kd=None) -> TrainedModel:
    path = save_checkpoint(model, path, spec, *prepared.shape)
    return TrainedModel(model, spec, path, sha256_file(path), count_parameters(model), val_accuracy, history, kd)


def build_teacher(config: RunConfig, prepared: PreparedData, path: Path, progress: Progress = SILENT) -> TrainedModel:
    """The user's teacher checkpoint (``teacher.weights``) or a teacher trained here."""
    spec = ModelSpec.parse(config.teacher.model)
    model = seeded_model(spec, config.seed, prepared)
    history = None
    if config.teacher.weights:
        load_weights(model, config.teacher.weights)
    else:
        history = fit(model, config.teacher, prepared, config.seed, progress, "teacher").history
    model.eval()
    val = prepared.splits.val
    return _saved(model, spec, prepared, path, history, accuracy(predict_logits(model, val.x), val.y))


def train_student(
    config: RunConfig,
    prepared: PreparedData,
    path: Path,
    t_logits: np.ndarray | None,
    progress: Progress = SILENT,
    description: str = "student",
) -> TrainedModel:
    """The student distilled from ``t_logits`` (the teacher's logits on the training split), or, with
    ``t_logits=None``, the same student trained by plain cross-entropy from the same initial weights."""
    spec = ModelSpec.parse(config.student.model)
    model = seeded_model(spec, config.seed, prepared)
    kd = kd_config(config) if t_logits is not None else None
    result = fit(model, config.student, prepared, config.seed, progress, description, kd, t_logits)
    return _saved(model, spec, prepared, path, result.history, result.final_val_accuracy, kd)


def load_trained(path: str | Path, spec: str, prepared: PreparedData) -> nn.Module:
    """A model saved by a teacher or student stage."""
    return load_checkpoint_model(path, ModelSpec.parse(spec), *prepared.shape)
