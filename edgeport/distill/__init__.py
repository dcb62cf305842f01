"""Knowledge distillation: KD loss, trainer, teacher-logit cache, evaluation."""

from edgeport.distill.config import KDConfig, TrainConfig
from edgeport.distill.evaluate import accuracy, predict_logits
from edgeport.distill.loss import kd_loss
from edgeport.distill.teacher_cache import teacher_logits
from edgeport.distill.trainer import TrainData, TrainResult, train

__all__ = [
    "KDConfig",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "accuracy",
    "kd_loss",
    "predict_logits",
    "teacher_logits",
    "train",
]
