"""Training loop for teachers (cross-entropy) and students (KD loss or cross-entropy)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeport.core.progress import SILENT, Progress
from edgeport.distill.config import KDConfig, TrainConfig
from edgeport.distill.evaluate import accuracy, predict_logits
from edgeport.distill.loss import kd_loss
from edgeport.errors import TrainingError


@dataclass(frozen=True)
class TrainData:
    """What one training reads: the arrays it fits and the validation split it scores after every epoch."""

    x: np.ndarray
    y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_val_accuracy(self) -> float:
        return self.history[-1]["val_accuracy"]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _loss(logits, labels, kd: KDConfig | None, t_logits):
    if kd is not None and t_logits is not None:
        return kd_loss(logits, t_logits, labels, kd.temperature, kd.alpha, kd.loss)
    return F.cross_entropy(logits, labels)


def train(
    model: nn.Module,
    data: TrainData,
    config: TrainConfig,
    kd: KDConfig | None = None,
    teacher_logits: np.ndarray | None = None,
    progress: Progress = SILENT,
    description: str = "train",
) -> TrainResult:
    """Train ``model`` in place. With ``kd`` and ``teacher_logits`` the loss is the KD loss.

    Teacher logits are indexed like ``data.x``; there is no augmentation, so the
    teacher's outputs for an image never change and can be computed once.
    """
    if (kd is None) != (teacher_logits is None):
        raise TrainingError("distillation needs both a KD config and the teacher's logits")
    if teacher_logits is not None and len(teacher_logits) != len(data.x):
        raise TrainingError(f"{len(teacher_logits)} teacher logits for {len(data.x)} training images")
    seed_everything(config.seed)
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    t_logits = torch.from_numpy(teacher_logits) if teacher_logits is not None else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult()
    started = time.perf_counter()
    with progress.task(description, total=config.epochs) as advance:
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            total_loss = 0.0
            for start in range(0, len(x), config.batch_size):
                idx = order[start : start + config.batch_size]
                loss = _loss(model(x[idx]), y[idx], kd, t_logits[idx] if t_logits is not None else None)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"{description}: loss became {loss.item()} in epoch {epoch}; lower the learning rate"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(idx)
            val_acc = accuracy(predict_logits(model, data.val_x), data.val_y)
            entry = {"epoch": epoch, "loss": total_loss / len(x), "val_accuracy": val_acc}
            result.history.append(entry)
            advance(1, loss=entry["loss"], val_acc=val_acc)
    result.seconds = time.perf_counter() - started
    model.eval()
    return result
