"""Building blocks shared by ``edgeport run`` (one candidate) and ``edgeport search`` (many).

Each helper is one stage step with everything it needs passed in, so the search can run
it in another process from files and plain settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeport.benchmarks import BenchSettings
from edgeport.config import BenchSection, DataSection, QuantizeSection
from edgeport.data import Dataset, Normalizer, Splits, calibration_subset, load_dataset, split_dataset
from edgeport.distill import KDConfig, TrainConfig, train
from edgeport.distill.trainer import TrainResult
from edgeport.models import ModelSpec, build_model
from edgeport.progress import SILENT, Progress
from edgeport.quant_backends import ModelSource, QuantConfig, QuantResult, TrainingData, quantize
from edgeport.quant_backends.fallback import FallbackReport, Tolerance, quantize_with_fallback


@dataclass(frozen=True)
class PreparedData:
    """A dataset split into train/val/test and normalised with statistics of the training split."""

    data: Dataset
    splits: Splits
    norm: Normalizer

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.data.channels, self.data.num_classes, self.data.image_size[0]


def prepare_data(section: DataSection, seed: int) -> PreparedData:
    data = load_dataset(section.name, section.path, section.image_size, section.channels)
    splits = split_dataset(data, section.val_fraction, section.test_fraction, seed)
    norm = Normalizer.fit(splits.train.x)
    splits = Splits(*(part.with_x(norm(part.x)) for part in (splits.train, splits.val, splits.test)))
    return PreparedData(data, splits, norm)


def seeded_model(spec: ModelSpec, seed: int, prepared: PreparedData) -> nn.Module:
    # Seed right before construction: a model's initial weights then depend only on the
    # seed, not on which stages ran before (the KD and no-KD students start identical).
    torch.manual_seed(seed)
    channels, classes, size = prepared.shape
    return build_model(spec, channels, classes, size)


def fit(
    model: nn.Module,
    section,
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
        splits.train.x,
        splits.train.y,
        splits.val.x,
        splits.val.y,
        cfg,
        kd=kd,
        teacher_logits=t_logits,
        progress=progress,
        description=description,
    )


@dataclass
class QuantizedStudent:
    result: QuantResult
    fallback: FallbackReport | None
    calibration_indices: np.ndarray


def quantize_student(
    fp32_path: Path,
    student: nn.Module,
    prepared: PreparedData,
    t_logits: np.ndarray,
    kd: KDConfig,
    section: QuantizeSection,
    quant_config: QuantConfig,
    out_path: Path,
    seed: int,
    progress: Progress = SILENT,
) -> QuantizedStudent:
    """Calibrate on seeded training images; with ``section.max_accuracy_drop``, fall back layer by layer."""
    splits = prepared.splits
    calib_idx = calibration_subset(splits.train, section.calibration_samples, seed)
    training = TrainingData(
        splits.train.x, splits.train.y, splits.val.x, splits.val.y, t_logits, kd.temperature, kd.alpha
    )
    source = ModelSource(fp32_path, student, training)
    calibration = {"input": splits.train.x[calib_idx]}
    if section.max_accuracy_drop is None:
        return QuantizedStudent(quantize(source, calibration, quant_config, out_path, progress), None, calib_idx)
    result, fallback = quantize_with_fallback(
        source,
        calibration,
        quant_config,
        out_path,
        {"input": splits.val.x},
        splits.val.y,
        Tolerance(max_drop=section.max_accuracy_drop),
        progress,
    )
    return QuantizedStudent(result, fallback, calib_idx)


def bench_settings(section: BenchSection, seed: int) -> BenchSettings:
    return BenchSettings(
        batch=section.batch,
        threads=section.threads,
        warmup=section.warmup,
        iterations=section.iterations,
        rounds=section.rounds,
        seed=seed,
    )


def batch_of(x: np.ndarray, batch: int) -> np.ndarray:
    """The first ``batch`` real images, repeated when the split holds fewer."""
    reps = -(-batch // len(x))
    return np.concatenate([x] * reps)[:batch] if reps > 1 else x[:batch]
