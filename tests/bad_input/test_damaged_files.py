"""Damaged and hostile data files: broken .npz archives, zip bombs, labels that wrap, TOML nested past reason.

Every case runs the real command line (or the real reader where no command reaches it cheaply) and must
end in one `error:` line naming the file (and the .npz member), exit 2, without ever holding more
memory than the documented cap on .npz data (edgeport/data/npz_reader.py).
"""

from __future__ import annotations

import io
import shutil
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.bad_input.conftest import one_line_error, run_cli

MiB = 1024 * 1024


# --- building damaged files ------------------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _valid_x(folder: Path) -> np.ndarray:
    return np.load(folder / "calib.npz")["x"]


def _bad_crc(x: np.ndarray) -> bytes:
    data = bytearray(_zip({"x.npy": _npy_header(x.shape) + x.astype("<f4").tobytes()}))
    middle = data.find(x.astype("<f4").tobytes()[:64]) + 32
    data[middle] ^= 0xFF  # stored data changed, CRC in the directory not
    return bytes(data)


def _bad_deflate(x: np.ndarray) -> bytes:
    """A member marked deflated whose stream is garbage (method patched in the local and central header)."""
    data = bytearray(_zip({"x.npy": b"\xff" * 4096}))
    struct.pack_into("<H", data, 8, zipfile.ZIP_DEFLATED)
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 10, zipfile.ZIP_DEFLATED)
    return bytes(data)


def _plain_npy(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


DAMAGED = {
    "not-a-zip": (lambda x: b"this is not a zip archive at all\n" * 8, "not an .npz"),
    "bad-crc": (_bad_crc, "x.npy"),
    "bad-deflate": (_bad_deflate, "x.npy"),
    "member-not-npy": (lambda x: _zip({"x.npy": b"hello, I am not an array" * 10}), "x.npy"),
    "plain-npy": (_plain_npy, ".npy"),
    "PiB-header": (lambda x: _zip({"x.npy": _npy_header((2**48, 4, 4)) + b"\0" * 64}), "cap"),
    "object-dtype": (lambda x: _zip({"x.npy": _npy_header((4,), "|O") + b"\0" * 32}), "object"),
    "truncated-data": (lambda x: _zip({"x.npy": _npy_header(x.shape) + b"\0" * 100}), "x.npy"),
}


@pytest.fixture
def folder(tmp_path, cnn_files) -> Path:
    for name in ("model.onnx", "calib.npz", "val.npz"):
        shutil.copy(cnn_files / name, tmp_path / name)
    return tmp_path


def _command(command: str, folder: Path, data: Path) -> list:
    if command == "quantize":
        return ["quantize", folder / "model.onnx", "--calib", data, "-o", folder / "out.onnx", "--quiet"]
    return ["bench", folder / "model.onnx", "--inputs", data, "--iterations", 5, "--quiet", "-o", folder / "r.json"]


# --- item 5: damaged .npz files --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["quantize", "bench"])
@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_npz_is_one_line_naming_file_and_member(folder, capsys, command, case):
    build, named = DAMAGED[case]
    bad = folder / "bad.npz"
    bad.write_bytes(build(_valid_x(folder)))
    code, _, err = run_cli(capsys, *_command(command, folder, bad))
    assert code == 2, err
    line = one_line_error(err)
    assert "bad.npz" in line and named in line, line
    assert not (folder / "out.onnx").exists() and not (folder / "r.json").exists()


# --- item 6: the cap, reading only what is needed ---------------------------------------------------


def _zeros_deflated(total: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``total`` zero bytes, built from one repeated fully-flushed block (cheap to
    make), and the CRC-32 of those bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc, chunk = 0, bytes(MiB)
    for _ in range(total // MiB):
        crc = zlib.crc32(chunk, crc)
    return block * (total // MiB) + compressor.flush(), crc


def _bomb(header: bytes, stream_bytes: int, declared_size: int | None = None) -> bytes:
    """One deflated member x.npy: ``header`` then ``stream_bytes`` zeros; the zip directory declares
    ``declared_size`` (default: what the stream really holds)."""
    body, _ = _zeros_deflated(stream_bytes)
    prefix = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = prefix.compress(header) + prefix.flush(zlib.Z_FULL_FLUSH)
    stream = head + body
    size = len(header) + stream_bytes if declared_size is None else declared_size
    info = zipfile.ZipInfo("x.npy")
    info.compress_type = zipfile.ZIP_STORED  # written raw below, then marked deflated
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, stream)
    data = bytearray(buffer.getvalue())
    central = data.find(b"PK\x01\x02")
    for offset, method_at, size_at in ((0, 8, 22), (central, 10, 24)):
        struct.pack_into("<H", data, offset + method_at, zipfile.ZIP_DEFLATED)
        struct.pack_into("<I", data, offset + size_at, size)
    return bytes(data)


BOMBS = {
    # the header claims 64 bytes, the directory and the stream 256 MiB: refused before decompressing
    "small-header-long-stream": lambda: _bomb(_npy_header((16,)), 256 * MiB),
    # header and directory agree on 64 bytes, the compressed stream is far longer than 64 bytes can be
    "small-header-long-compressed": lambda: _bomb(_npy_header((16,)), 256 * MiB, len(_npy_header((16,))) + 64),
    # the header claims 256 MiB (over the 64 MiB cap of this test) and the stream delivers it
    "header-over-cap": lambda: _bomb(_npy_header((64 * MiB,)), 256 * MiB),
    # the header claims 2^50 bytes: over any cap
    "huge-header": lambda: _bomb(_npy_header((2**48,)), 16 * MiB),
    # the header claims 32 MiB (under the cap), the stream ends after 16 MiB
    "short-stream": lambda: _bomb(_npy_header((8 * MiB,)), 16 * MiB, len(_npy_header((8 * MiB,))) + 32 * MiB),
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_a_zip_bomb_is_refused_without_allocating_its_size(tmp_path, monkeypatch, case):
    from edgeport.data.npz_reader import read_npz
    from edgeport.errors import DataError

    monkeypatch.setenv("EDGEPORT_MAX_NPZ_BYTES", str(64 * MiB))
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(BOMBS[case]())
    tracemalloc.start()  # numpy reports its array buffers to tracemalloc too
    try:
        with pytest.raises(DataError) as refused:
            read_npz(bomb, ["x"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "bomb.npz" in str(refused.value) and "x.npy" in str(refused.value), refused.value
    # "short-stream" may fill its 32 MiB array (under the cap) before the stream runs dry; nothing more
    assert peak < 40 * MiB, f"{case}: {peak / MiB:.0f} MiB traced while refusing"


def test_the_cap_is_reported_with_file_member_and_variable(folder, capsys, monkeypatch):
    monkeypatch.setenv("EDGEPORT_MAX_NPZ_BYTES", "1000")
    for command in ("quantize", "bench"):
        code, _, err = run_cli(capsys, *_command(command, folder, folder / "calib.npz"))
        assert code == 2, err
        line = one_line_error(err)
        assert "calib.npz" in line and "x.npy" in line and "1000 B" in line, line
        assert "EDGEPORT_MAX_NPZ_BYTES" in line, line


@pytest.mark.parametrize("value", ["lots", "-5", "0", "1e99"])
def test_a_bad_cap_variable_is_refused_naming_it(folder, capsys, monkeypatch, value):
    monkeypatch.setenv("EDGEPORT_MAX_NPZ_BYTES", value)
    code, _, err = run_cli(capsys, *_command("bench", folder, folder / "calib.npz"))
    assert code == 2, err
    assert "EDGEPORT_MAX_NPZ_BYTES" in one_line_error(err)


def test_unused_members_are_never_read(folder, capsys):
    """A damaged or enormous array the model does not use does not stop the command (nor fill memory)."""
    x = _valid_x(folder)
    members = {
        "x.npy": _npy_header(x.shape) + x.astype("<f4").tobytes(),
        "junk.npy": _npy_header((2**48, 4, 4)) + b"\0" * 64,
        "notes.txt": b"free text",
    }
    (folder / "mixed.npz").write_bytes(_zip(members))
    code, _, err = run_cli(capsys, *_command("bench", folder, folder / "mixed.npz"))
    assert code == 0, err


def test_a_damaged_npz_dataset_is_one_line(tmp_path):
    from edgeport.data import load_dataset
    from edgeport.errors import DataError

    x = np.random.default_rng(0).random((8, 1, 8, 8)).astype("<f4")
    y = np.arange(8) % 2
    data = bytearray(_zip({"x.npy": _npy_header(x.shape) + x.tobytes(), "y.npy": _plain_npy(y)}))
    data[data.find(x.tobytes()[:64]) + 32] ^= 0xFF  # x's stored data changed, its CRC not
    bad = tmp_path / "data.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"data\.npz.*x\.npy"):
        load_dataset("npz", path=bad)


def test_a_damaged_teacher_cache_entry_is_recomputed(tmp_path):
    import torch

    from edgeport.distill.teacher_cache import cache_key, teacher_logits

    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    inputs = np.random.default_rng(0).random((5, 1, 2, 2)).astype(np.float32)
    entry = tmp_path / f"{cache_key('abc', inputs)}.npy"
    entry.write_bytes(_npy_header((2**48, 3)) + b"\0" * 64)  # would be 3 PiB if believed
    logits, cached = teacher_logits(teacher, "abc", inputs, tmp_path)
    assert not cached and logits.shape == (5, 3)
    assert np.array_equal(np.load(entry), logits)  # overwritten with the recomputed logits


def test_the_remote_runner_reads_only_what_the_host_wrote(tmp_path):
    """The device-side runner imports nothing from edgeport; its own check: stored members whose size
    matches their header, so the data can never exceed the file the host sent."""
    from edgeport.benchmarks.remote_runner import read_inputs

    good = tmp_path / "good.npz"
    np.savez(good, input=np.ones((2, 3), np.float32))
    assert read_inputs(str(good))["input"].shape == (2, 3)
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(BOMBS["header-over-cap"]())
    with pytest.raises(ValueError, match="x.npy"):
        read_inputs(str(bomb))


# --- item 7: labels that wrap when cast ------------------------------------------------------------


def test_uint64_labels_past_int64_are_refused_naming_y(folder, capsys):
    x = _valid_x(folder)
    y = np.zeros(len(x), dtype=np.uint64)
    y[3] = 2**63
    np.savez(folder / "y.npz", x=x, y=y)
    code, _, err = run_cli(capsys, *_command("quantize", folder, folder / "y.npz"))
    assert code == 2, err
    line = one_line_error(err)
    assert "y.npz" in line and "'y'" in line and str(2**63) in line, line


# --- item 10: TOML nested past reason --------------------------------------------------------------

DEEP = 5000
NESTINGS = {
    "arrays": "[run]\nseed = " + "[" * DEEP + "]" * DEEP + "\n",
    "inline-tables": "[run]\nx = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n",
    "table-header": "[run." + ".".join(["a"] * DEEP) + "]\nb = 1\n",
}


@pytest.mark.parametrize("nesting", sorted(NESTINGS))
@pytest.mark.parametrize("command", ["gate", "run", "search"])
def test_toml_nested_thousands_deep_is_one_line(tmp_path, capsys, command, nesting):
    """Arrays and inline tables are parsed recursively (a RecursionError traceback before); a deep
    table header parses, and was refused as an unknown key: now all three are refused for their depth."""
    deep = tmp_path / "deep.toml"
    text = NESTINGS[nesting]
    if command == "gate":
        text = text.replace("[run", "[targets", 1)
        args = ["gate", "--budget", deep, "--result", tmp_path / "r.json", "--quiet"]
    else:
        args = [command, "--config", deep, "--out", tmp_path / "runs", "--quiet"]
    deep.write_text(text)
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    line = one_line_error(err)
    assert "deep.toml" in line and "levels deep" in line.replace(str(tmp_path), ""), line
    assert not (tmp_path / "runs").exists()
