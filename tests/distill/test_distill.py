import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeport.distill import KDConfig, TrainConfig, TrainData, accuracy, kd_loss, predict_logits, teacher_logits, train
from edgeport.errors import ConfigError, TrainingError
from edgeport.models import build_model


def test_kd_loss_matches_the_formula():
    torch.manual_seed(0)
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    y = torch.randint(0, 5, (8,))
    T, alpha = 3.0, 0.7
    p_t = F.softmax(t / T, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, dim=1))).sum(1).mean()
    expected = alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)
    assert torch.allclose(kd_loss(s, t, y, T, alpha, "hinton"), expected, atol=1e-6)
    assert torch.allclose(kd_loss(s, t, y, T, 0.0), F.cross_entropy(s, y))
    assert kd_loss(t, t, y, T, 1.0).abs() < 1e-6  # matching the teacher exactly costs nothing

    def z(logits):  # per sample: zero mean, unit (unbiased) standard deviation
        return (logits - logits.mean(1, keepdim=True)) / logits.std(1, keepdim=True)

    p_zt = F.softmax(z(t) / T, dim=1)
    kl_z = (p_zt * (p_zt.log() - F.log_softmax(z(s) / T, dim=1))).sum(1).mean()
    standardized = alpha * T * T * kl_z + (1 - alpha) * F.cross_entropy(s, y)  # hard labels: raw logits
    assert torch.allclose(kd_loss(s, t, y, T, alpha), standardized, atol=1e-5)
    # only the teacher's relative preferences count: a teacher 10x louder and shifted costs the same
    assert torch.allclose(kd_loss(s, 10 * t + 3, y, T, 1.0), kd_loss(s, t, y, T, 1.0), atol=1e-5)
    assert not torch.allclose(kd_loss(s, 10 * t, y, T, 1.0, "hinton"), kd_loss(s, t, y, T, 1.0, "hinton"))


def test_configs_validate():
    with pytest.raises(ConfigError, match="epochs must be a positive integer, got 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="alpha"):
        KDConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        KDConfig(temperature=0)
    with pytest.raises(ConfigError, match="KD loss"):
        KDConfig(loss="fancy")  # type: ignore[arg-type]


def test_training_learns_digits(digits16):
    torch.manual_seed(0)  # the initial weights too: the global generator's state depends on the tests before
    model = build_model("cnn:width=1,depth=3", 1, 10, 16)
    result = train(
        model,
        TrainData(digits16.train.x, digits16.train.y, digits16.val.x, digits16.val.y),
        TrainConfig(epochs=4, lr=1e-2, seed=0),
    )
    assert len(result.history) == 4
    assert result.final_val_accuracy > 80.0


def test_training_is_deterministic_by_seed(digits16):
    def run(seed):
        torch.manual_seed(seed)
        model = build_model("cnn:width=0.5,depth=2", 1, 10, 16)
        train(
            model,
            TrainData(digits16.train.x[:200], digits16.train.y[:200], digits16.val.x, digits16.val.y),
            TrainConfig(epochs=1, seed=seed),
        )
        return predict_logits(model, digits16.val.x[:20])

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_student_learns_from_the_teachers_soft_outputs(digits16):
    """With alpha=1 the labels are never seen: the student can only match the teacher.

    A 'teacher' that answers (label + 1) mod 10 is followed by the student, which
    proves the loss uses the teacher's outputs rather than the labels.
    """
    x, y = digits16.train.x, digits16.train.y
    shifted = (y + 1) % 10
    fake_teacher = np.full((len(y), 10), -4.0, np.float32)
    fake_teacher[np.arange(len(y)), shifted] = 4.0
    torch.manual_seed(0)
    student = build_model("cnn:width=1,depth=3", 1, 10, 16)
    train(
        student,
        TrainData(x, y, digits16.val.x, digits16.val.y),
        TrainConfig(epochs=4, lr=1e-2, seed=0),
        kd=KDConfig(temperature=2.0, alpha=1.0),
        teacher_logits=fake_teacher,
    )
    predictions = predict_logits(student, digits16.val.x).argmax(1)
    assert (predictions == (digits16.val.y + 1) % 10).mean() > 0.8
    assert accuracy(predict_logits(student, digits16.val.x), digits16.val.y) < 20.0


def test_training_rejects_inconsistent_kd_inputs(digits16):
    model = build_model("cnn:width=0.5,depth=2", 1, 10, 16)
    with pytest.raises(TrainingError, match="both"):
        train(
            model,
            TrainData(digits16.train.x, digits16.train.y, digits16.val.x, digits16.val.y),
            TrainConfig(epochs=1),
            kd=KDConfig(),
        )
    with pytest.raises(TrainingError, match="teacher logits for"):
        train(
            model,
            TrainData(digits16.train.x, digits16.train.y, digits16.val.x, digits16.val.y),
            TrainConfig(epochs=1),
            kd=KDConfig(),
            teacher_logits=np.zeros((3, 10), np.float32),
        )


def test_nan_loss_is_a_training_error(digits16):
    model = build_model("cnn:width=0.5,depth=2", 1, 10, 16)
    bad = digits16.train.x.copy()
    bad[0] = np.nan
    with pytest.raises(TrainingError, match="loss became nan"):
        train(
            model,
            TrainData(bad, digits16.train.y, digits16.val.x, digits16.val.y),
            TrainConfig(epochs=1, batch_size=4096),
        )


def test_teacher_logits_are_cached(tmp_path, digits16):
    teacher = build_model("cnn:width=0.5,depth=2", 1, 10, 16).eval()
    x = digits16.train.x[:64]
    first, hit1 = teacher_logits(teacher, "abc", x, tmp_path)
    second, hit2 = teacher_logits(teacher, "abc", x, tmp_path)
    assert (hit1, hit2) == (False, True)
    assert np.array_equal(first, second)
    assert np.allclose(first, predict_logits(teacher, x), atol=1e-6)
    _, other_teacher = teacher_logits(teacher, "def", x, tmp_path)
    _, other_inputs = teacher_logits(teacher, "abc", x[:32], tmp_path)
    assert not other_teacher and not other_inputs
    assert len(list(tmp_path.glob("*.npy"))) == 3
