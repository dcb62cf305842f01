import pickle

import numpy as np
import pytest
from PIL import Image

from edgeport.data import Normalizer, calibration_subset, list_datasets, load_dataset, split_dataset
from edgeport.errors import ConfigError, DataError
from tests.helpers import write_npz


def test_registry_lists_every_loader():
    assert list_datasets() == ["cifar10", "digits", "imagefolder", "npz"]


def test_digits_is_resized_to_requested_size():
    data = load_dataset("digits", image_size=24)
    assert data.x.shape == (1797, 1, 24, 24)
    assert data.x.dtype == np.float32
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0 + 1e-6
    assert data.num_classes == 10 and set(np.unique(data.y)) == set(range(10))


def test_digits_default_is_32x32_single_channel():
    assert load_dataset("digits").x.shape[1:] == (1, 32, 32)


def test_split_is_stratified_disjoint_and_deterministic():
    data = load_dataset("digits", image_size=8)
    a = split_dataset(data, 0.2, 0.2, seed=3)
    b = split_dataset(data, 0.2, 0.2, seed=3)
    c = split_dataset(data, 0.2, 0.2, seed=4)
    assert np.array_equal(a.test.x, b.test.x)
    assert not np.array_equal(a.test.x, c.test.x)
    assert len(a.train.y) + len(a.val.y) + len(a.test.y) == len(data.y)
    # stratified: every split keeps each class's share within one sample's worth
    share = np.bincount(data.y) / len(data.y)
    for part in (a.train, a.val, a.test):
        assert np.abs(np.bincount(part.y, minlength=10) / len(part.y) - share).max() < 2.0 / len(part.y) + 0.01
    # disjoint: no test image also appears in train
    train_rows = {row.tobytes() for row in a.train.x}
    assert sum(row.tobytes() in train_rows for row in a.test.x) <= 2  # digits has a few exact duplicates


def test_calibration_subset_is_seeded_and_bounded():
    data = load_dataset("digits", image_size=8)
    idx = calibration_subset(data, 100, seed=1)
    assert len(idx) == len(set(idx)) == 100
    assert np.array_equal(idx, calibration_subset(data, 100, seed=1))
    assert len(calibration_subset(data, 10_000, seed=1)) == len(data.y)
    with pytest.raises(ConfigError):
        calibration_subset(data, 0)


def test_normalizer_standardises_per_channel(rng):
    x = rng.random((50, 3, 4, 4)).astype(np.float32) * 5 + 2
    out = Normalizer.fit(x)(x)
    assert np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-3)


def test_npz_roundtrip(tmp_path):
    x, y = write_npz(tmp_path / "d.npz", n=30, classes=3)
    data = load_dataset("npz", tmp_path / "d.npz")
    assert data.x.shape == x.shape and np.array_equal(data.y, y) and data.num_classes == 3


def test_npz_uint8_hw_images_get_a_channel_and_unit_range(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((4, 5, 5), 255, np.uint8), y=np.array([0, 1, 0, 1]))
    data = load_dataset("npz", tmp_path / "d.npz")
    assert data.x.shape == (4, 1, 5, 5) and data.x.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 1, 4, 4))}, "expected arrays 'x' and 'y'"),
        ({"x": np.zeros((4, 1, 4, 4)), "y": np.zeros(3, int)}, "4 samples but 'y' has 3"),
        ({"x": np.zeros((4, 1, 4, 4)), "y": np.zeros(4)}, "integer array"),
        ({"x": np.zeros((4, 4)), "y": np.zeros(4, int)}, "must have shape"),
        ({"x": np.zeros((2, 1, 4, 4)), "y": np.array([0, -1])}, "labels must be >= 0"),
    ],
)
def test_npz_errors_name_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("npz", path)
    assert str(path) in str(info.value)


def test_missing_path_and_not_an_npz(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset("npz", tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError, match="text.npz"):
        load_dataset("npz", tmp_path / "text.npz")
    with pytest.raises(ConfigError, match="needs a data path"):
        load_dataset("cifar10")
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def _write_cifar(folder, per_batch=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, per_batch)),
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)


def test_cifar10_python_folder(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_dataset("cifar10", tmp_path)  # the parent folder is accepted too
    assert data.x.shape == (60, 3, 32, 32) and data.num_classes == 10
    gray = load_dataset("cifar10", tmp_path / "cifar-10-batches-py", image_size=16, channels=1)
    assert gray.x.shape == (60, 1, 16, 16)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_refuses_code_in_pickles_and_bad_shapes(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, handle)
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_dataset("cifar10", folder)
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(DataError, match=r"data_batch_1.*\(N, 3072\)"):
        load_dataset("cifar10", folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no data_batch"):
        load_dataset("cifar10", empty)


def test_imagefolder(tmp_path):
    for cls, value in (("cat", 30), ("dog", 220)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (10, 12), (value, value, value)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    data = load_dataset("imagefolder", tmp_path, image_size=8)
    assert data.x.shape == (6, 3, 8, 8) and data.class_names == ("cat", "dog")
    assert list(data.y) == [0, 0, 0, 1, 1, 1]
    assert data.x[data.y == 1].mean() > data.x[data.y == 0].mean()


def test_imagefolder_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "a" / "0.png")
    with pytest.raises(DataError, match="without images: b"):
        load_dataset("imagefolder", tmp_path)
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset("imagefolder", tmp_path)


def test_fingerprint_tracks_content():
    a = load_dataset("digits", image_size=8)
    b = load_dataset("digits", image_size=8)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != a.with_x(a.x + 1e-3).fingerprint()
