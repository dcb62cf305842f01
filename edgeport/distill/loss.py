"""The knowledge-distillation loss (Hinton et al. 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float
) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).

    The T^2 factor keeps the soft term's gradient scale independent of T.
    """
    soft_student = F.log_softmax(student_logits / temperature, dim=1)
    soft_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(soft_student, soft_teacher, reduction="batchmean", log_target=True)
    ce = F.cross_entropy(student_logits, labels)
    return alpha * temperature**2 * kl + (1.0 - alpha) * ce
