"""Stand-ins for models exported by a non-torch converter (paddle2onnx's style), built with onnx.helper.

Two PaddleOCR-like models, opset 12, with the habits of that converter rather than torch.onnx's:
``p2o.DynamicDimension.k`` dim_params, paddle's tensor names (``conv2d_3.w_0``, ``batch_norm_2.tmp_0``),
Constant nodes for shapes, BatchNormalization left unfolded, HardSwish as HardSigmoid + Mul (HardSwish
exists from opset 14 only), relu6 as Clip with constant min/max inputs, and paddle's final ``scale``
op as an Identity into ``save_infer_model/scale_0.tmp_0``.

- ``build_detector``: a DBNet-like text detector. Input ``x`` [N, 3, H, W] with symbolic N, H and W;
  a MobileNetV3-like backbone (a strided stem, then inverted residual blocks: 1x1 expand, 3x3
  depthwise, 1x1 project, a residual Add where the shape allows) down to 1/32; a DB-FPN neck whose
  Resize nodes take their ``sizes`` from Shape -> Slice -> Concat of the tensor they are added to
  (one uses constant ``scales``, as paddle's ``scale_factor`` does); a DB head of Conv + BN + Relu,
  ConvTranspose + BN + Relu, ConvTranspose, Sigmoid: a text probability map [N, 1, H, W].
- ``build_recognizer``: a CRNN-like CTC recognizer. Input ``x`` [N, 3, 48, W] with symbolic N and W;
  the same kind of backbone with (2, 1) strides, a (3, 1) convolution that brings the height to 1,
  Squeeze (axes an attribute, as in opset 12), Transpose to [N, T, C], Reshape by a [0, -1, C]
  constant, an MLP neck (MatMul + Add + HardSwish), a MatMul + Add head and Softmax over the last
  axis: [N, W / 8, 97] with class 0 the CTC blank.

Weights are seeded and He-initialised, then made to behave like a trained network's from structured
synthetic images (``text_images``: scenes with lines of glyphs among boxes and strokes;
``text_lines``: cropped lines of glyphs), not noise:

- every BatchNormalization's running mean and variance are those of its input on such images (a
  trained network's running averages match its activations; random ones make them drift with depth);
- residual branches end in a BN with a small scale, as trained residual branches tend to;
- the last layers are trained on the images' ground truth: the detector's last ConvTranspose as a
  logistic regression on the text mask, the recognizer's neck and head with softmax cross-entropy
  on a peaky CTC alignment of the glyphs (features jittered during training), so that the outputs'
  confidence comes from data rather than from random logits.

What they are not: trained end to end. The backbones are random features, so the recognizer reads
about 87% of steps right and its fp32 decoding is more fragile than a trained recognizer's (about 3%
of its lines decode differently under input noise of 1e-3, far below 8-bit pixel noise): a stand-in
for the graphs and the numerics' shape, not for a real model's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 12
IR_VERSION = 7  # what paddle2onnx writes for opset 12
NUM_CLASSES = 97  # PaddleOCR's English dictionary (95 characters + space) plus the CTC blank
GLYPHS = 24  # distinct glyph shapes drawn by text_lines; glyph k is class k + 1
REC_HEIGHT = 48
REC_STRIDE = 8  # input columns per CTC time step
BN_EPSILON = 1e-5
NOISE = 0.3  # the recognizer head's training jitter, relative to each feature's spread
BN_SAMPLES = 8  # images the running statistics are measured on (every pixel of each is a sample)


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8-range [N, H, W, 3] images to PaddleOCR's input: NCHW, (x / 255 - 0.5) / 0.5."""
    return ((images.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A light paper-like background: a colour, a gentle gradient, sensor noise."""
    base = rng.uniform(150, 240, 3)
    ramp = np.linspace(-1, 1, width)[None, :, None] * rng.uniform(-25, 25, 3)
    ramp = ramp + np.linspace(-1, 1, height)[:, None, None] * rng.uniform(-25, 25, 3)
    return base + ramp + rng.normal(0, 6, (height, width, 3))


_FONT_ROWS, _FONT_COLS = 5, 3


def _font(seed: int = 1234) -> np.ndarray:
    """GLYPHS distinct 5x3 bitmaps (a pixel font), each with enough ink to read."""
    rng = np.random.default_rng(seed)
    glyphs: list[np.ndarray] = []
    while len(glyphs) < GLYPHS:
        bitmap = rng.random((_FONT_ROWS, _FONT_COLS)) < 0.55
        if 6 <= bitmap.sum() <= 12 and bitmap[:, 0].any() and bitmap[:, -1].any() and bitmap[0].any():
            if not any((bitmap == g).all() for g in glyphs):
                glyphs.append(bitmap)
    return np.stack(glyphs)


FONT = _font()


def _draw_glyph(image: np.ndarray, glyph: int, top: int, left: int, cell: tuple[int, int], ink: np.ndarray) -> None:
    rows, cols = cell
    bitmap = np.kron(FONT[glyph], np.ones((rows, cols), bool))
    height, width = bitmap.shape
    region = image[top : top + height, left : left + width]
    bitmap = bitmap[: region.shape[0], : region.shape[1]]
    region[bitmap] = ink


def text_images(count: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Document-like scenes: lines of glyphs (text) among plain rectangles and strokes (clutter).

    Returns the model inputs [count, 3, height, width] and the text mask [count, height, width]."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, height, width, 3))
    masks = np.zeros((count, height, width), bool)
    for index in range(count):
        image = _background(rng, height, width)
        for _ in range(rng.integers(1, 4)):  # clutter: boxes and lines that are not text
            y, x = int(rng.integers(0, height - 8)), int(rng.integers(0, width - 8))
            box_h, box_w = int(rng.integers(4, max(5, height // 3))), int(rng.integers(4, max(5, width // 3)))
            image[y : y + box_h, x : x + box_w] = rng.uniform(60, 255, 3)
        for _ in range(rng.integers(1, 4)):  # text lines
            scale = int(rng.integers(2, 4))
            cell = (scale, scale)
            line_h = _FONT_ROWS * scale
            top = int(rng.integers(0, height - line_h))
            left = int(rng.integers(0, width // 2))
            ink = rng.uniform(0, 90, 3) if rng.random() < 0.8 else rng.uniform(230, 255, 3)
            position = left
            for _ in range(rng.integers(3, 12)):
                step = _FONT_COLS * scale + scale
                if position + step > width:
                    break
                _draw_glyph(image, int(rng.integers(GLYPHS)), top, position, cell, ink)
                position += step
            masks[index, max(0, top - 1) : top + line_h + 1, max(0, left - 1) : position] = True
        images[index] = image
    return normalize(np.clip(images, 0, 255)), masks


def text_lines(count: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cropped text lines [count, 3, 48, width] and their peaky CTC alignment [count, width // 8]:
    the class of each glyph on the step where it starts, blank (0) elsewhere.

    Glyphs are set in a monospaced 30 x 15 pixel cell on a 16-pixel pitch (two CTC steps per glyph),
    with word gaps and varying ink, paper and noise: regular enough for the stand-in's trained head
    to read most steps confidently."""
    rng = np.random.default_rng(seed)
    steps = width // REC_STRIDE
    images = np.empty((count, REC_HEIGHT, width, 3))
    alignment = np.zeros((count, steps), np.int64)
    rows, cols, pitch = 6, 5, 2 * REC_STRIDE
    for index in range(count):
        image = _background(rng, REC_HEIGHT, width)
        top = int(rng.integers(6, REC_HEIGHT - _FONT_ROWS * rows - 5))
        ink = rng.uniform(0, 90, 3)
        position = REC_STRIDE * int(rng.integers(0, 3))
        while position + _FONT_COLS * cols <= width:
            if rng.random() > 0.15:  # else a space between words: an empty cell
                glyph = int(rng.integers(GLYPHS))
                _draw_glyph(image, glyph, top, position, (rows, cols), ink)
                alignment[index, position // REC_STRIDE] = glyph + 1
            position += pitch
        images[index] = image
    return normalize(np.clip(images, 0, 255)), alignment


@dataclass
class _Builder:
    """A graph written node by node in paddle2onnx's naming, able to run what it has built so far."""

    name: str
    reference: np.ndarray  # images the partial graph is run on to set statistics and fit layers
    seed: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def _next(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, -1) + 1
        return self.counters[kind]

    def node(self, op: str, inputs: list[str], layer: str | None = None, **attrs) -> str:
        index = self._next(op)
        layer = layer or f"{op.lower()}_{index}"
        output = f"{layer}.tmp_{self._next(layer)}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"p2o.{op}.{index}", **attrs))
        return output

    def constant(self, value: np.ndarray) -> str:
        index = self._next("Constant")
        output = f"p2o.helper.constant.{index}"
        self.nodes.append(
            helper.make_node(
                "Constant", [], [output], name=f"p2o.Constant.{index}", value=numpy_helper.from_array(value, output)
            )
        )
        return output

    def save_output(self, x: str) -> str:
        """paddle's final ``scale`` op (scale 1, bias 0), which paddle2onnx writes as an Identity."""
        output = f"save_infer_model/scale_0.tmp_{self._next('save_infer_model')}"
        self.nodes.append(helper.make_node("Identity", [x], [output], name=f"p2o.Identity.{self._next('Identity')}"))
        return output

    def weight(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def set_weight(self, name: str, value: np.ndarray) -> None:
        for index, tensor in enumerate(self.initializers):
            if tensor.name == name:
                self.initializers[index] = numpy_helper.from_array(value.astype(np.float32), name)
                return
        raise KeyError(name)

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="PaddlePaddle", producer_version="2.6"
        )
        model.ir_version = IR_VERSION
        return model

    def run(self, tensor: str, input_info: onnx.ValueInfoProto, samples: int | None = None) -> np.ndarray:
        import onnxruntime as ort

        output = helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)
        model = self.model([input_info], [output])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, {input_info.name: self.reference[:samples]})[0]

    # layers ---------------------------------------------------------------------------------------

    def conv(
        self, x: str, c_in: int, c_out: int, kernel, stride=1, group: int = 1, bias: bool = False, pad: bool = True
    ) -> str:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        index = self._next("conv2d")
        fan_in = c_in // group * kh * kw
        w = self.weight(
            f"conv2d_{index}.w_0", self.rng.normal(0, np.sqrt(2.0 / fan_in), (c_out, c_in // group, kh, kw))
        )
        inputs = [x, w]
        if bias:
            inputs.append(self.weight(f"conv2d_{index}.b_0", np.zeros(c_out)))
        pads = [kh // 2, kw // 2, kh // 2, kw // 2] if pad else [0, 0, 0, 0]
        return self.node(
            "Conv",
            inputs,
            f"conv2d_{index}",
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            pads=pads,
            group=group,
            dilations=[1, 1],
        )

    def conv_transpose(self, x: str, c_in: int, c_out: int, bias: bool = False) -> str:
        index = self._next("conv2d_transpose")
        w = self.weight(f"conv2d_transpose_{index}.w_0", self.rng.normal(0, np.sqrt(2.0 / c_in), (c_in, c_out, 2, 2)))
        inputs = [x, w]
        if bias:
            inputs.append(self.weight(f"conv2d_transpose_{index}.b_0", np.zeros(c_out)))
        return self.node(
            "ConvTranspose",
            inputs,
            f"conv2d_transpose_{index}",
            kernel_shape=[2, 2],
            strides=[2, 2],
            pads=[0, 0, 0, 0],
            dilations=[1, 1],
            group=1,
        )

    def batch_norm(self, x: str, channels: int, input_info: onnx.ValueInfoProto, gain: float = 1.0) -> str:
        """BatchNormalization whose running statistics are those of ``x`` on the reference images;
        ``gain`` scales its learned scale (a residual branch's last BN: small, as trained ones are)."""
        values = self.run(x, input_info, BN_SAMPLES)
        mean = values.mean(axis=(0, 2, 3))
        var = values.var(axis=(0, 2, 3))
        var = var + 0.1 * var.mean() + 1e-3
        index = self._next("batch_norm")
        names = [
            self.weight(f"batch_norm_{index}.w_0", gain * self.rng.uniform(0.6, 1.4, channels)),  # scale
            self.weight(f"batch_norm_{index}.b_0", gain * self.rng.uniform(0.0, 1.0, channels)),  # shift
            self.weight(f"batch_norm_{index}.w_1", mean),
            self.weight(f"batch_norm_{index}.w_2", var),
        ]
        return self.node("BatchNormalization", [x, *names], f"batch_norm_{index}", epsilon=BN_EPSILON, momentum=0.9)

    def activation(self, x: str, kind: str) -> str:
        if kind == "relu":
            return self.node("Relu", [x])
        if kind == "relu6":  # Clip-11+: min and max are inputs
            return self.node(
                "Clip", [x, self.constant(np.array(0, np.float32)), self.constant(np.array(6, np.float32))]
            )
        if kind == "hardswish":  # HardSwish exists from opset 14: paddle2onnx writes x * hardsigmoid(x)
            gate = self.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
            return self.node("Mul", [x, gate], "hardswish_" + str(self._next("hardswish")))
        assert kind == "none"
        return x

    def conv_bn(self, x, c_in, c_out, kernel, stride, info, act="relu", group=1, gain=1.0, pad=True) -> str:
        y = self.conv(x, c_in, c_out, kernel, stride, group, pad=pad)
        return self.activation(self.batch_norm(y, c_out, info, gain), act)

    def inverted_residual(self, x, c_in, expand, c_out, stride, act, info) -> str:
        """MobileNetV3's block: 1x1 expand, 3x3 depthwise (maybe strided), 1x1 project (no activation),
        plus the input when the shape allows (stride 1, same channels)."""
        residual = stride in (1, (1, 1)) and c_in == c_out
        y = self.conv_bn(x, c_in, expand, 1, 1, info, act)
        y = self.conv_bn(y, expand, expand, 3, stride, info, act, group=expand)
        y = self.conv_bn(y, expand, c_out, 1, 1, info, "none", gain=0.3 if residual else 1.0)
        return self.node("Add", [x, y], "elementwise_add_" + str(self._next("add"))) if residual else y

    def resize_like(self, x: str, like: str) -> str:
        """Nearest upsampling of ``x`` to the height and width of ``like``: sizes from Shape/Slice/Concat."""
        shape_x = self.node("Shape", [x], "shape_" + str(self._next("shape")))
        shape_like = self.node("Shape", [like], "shape_" + str(self._next("shape")))

        def part(shape: str, start: int, end: int) -> str:
            starts, ends, axes = (self.constant(np.array([v], np.int64)) for v in (start, end, 0))
            return self.node("Slice", [shape, starts, ends, axes])

        sizes = self.node("Concat", [part(shape_x, 0, 2), part(shape_like, 2, 4)], axis=0)
        empty = self.constant(np.array([], np.float32))
        return self.node(
            "Resize",
            [x, empty, empty, sizes],
            "nearest_interp_v2_" + str(self._next("interp")),
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )

    def upsample(self, x: str, factor: int) -> str:
        """Nearest upsampling by a constant factor (paddle's scale_factor): Resize with scales."""
        roi = self.constant(np.array([], np.float32))
        scales = self.constant(np.array([1, 1, factor, factor], np.float32))
        return self.node(
            "Resize",
            [x, roi, scales],
            "nearest_interp_v2_" + str(self._next("interp")),
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )


def _image_input(height: int | str, width: int | str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, ["p2o.DynamicDimension.0", 3, height, width])


def _adam(params: dict[str, np.ndarray], loss_and_grads, steps: int, lr: float) -> None:
    """Full-batch Adam on ``params`` in place; ``loss_and_grads(params) -> (loss, grads)``."""
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    for step in range(1, steps + 1):
        _, grads = loss_and_grads(params)
        for key, grad in grads.items():
            m, v = moments[key]
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad**2
            params[key] -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)


def build_detector(path: str | Path, seed: int = 0, fit_images: int = 24, fit_size: int = 128) -> Path:
    """The DBNet-like detector at ``path`` (see the module docstring); returns the path."""
    images, masks = text_images(fit_images, fit_size, fit_size, seed=seed + 100)
    info = _image_input("p2o.DynamicDimension.1", "p2o.DynamicDimension.2")
    b = _Builder("paddle-infer", images, seed)
    x = b.conv_bn("x", 3, 16, 3, 2, info, "hardswish")  # /2
    stages = []
    c = 16
    for c_out, expand, act in ((24, 64, "relu"), (40, 96, "hardswish"), (64, 160, "relu6"), (96, 240, "hardswish")):
        x = b.inverted_residual(x, c, expand, c_out, 2, act, info)  # /4 /8 /16 /32
        x = b.inverted_residual(x, c_out, expand, c_out, 1, act, info)
        stages.append((x, c_out))
        c = c_out
    # DB-FPN: 1x1 lateral convs to 96, top-down additions, 3x3 convs to 24, all at 1/4, concatenated
    in2, in3, in4, in5 = (b.conv(t, ch, 96, 1, 1) for t, ch in stages)
    out4 = b.node("Add", [in4, b.upsample(in5, 2)], "elementwise_add_0")
    out3 = b.node("Add", [in3, b.resize_like(out4, in3)], "elementwise_add_1")
    out2 = b.node("Add", [in2, b.resize_like(out3, in2)], "elementwise_add_2")
    p5, p4, p3, p2 = (b.conv(t, 96, 24, 3, 1) for t in (in5, out4, out3, out2))
    fused = b.node("Concat", [b.resize_like(p5, p2), b.resize_like(p4, p2), b.resize_like(p3, p2), p2], axis=1)
    # DB head: a probability map at the input's resolution
    h = b.conv_bn(fused, 96, 24, 3, 1, info, "relu")
    h = b.conv_transpose(h, 24, 24)
    h = b.activation(b.batch_norm(h, 24, info), "relu")
    features = b.run(h, info)  # [N, 24, H/2, W/2]: the last layer is fitted to the text masks
    logits = b.conv_transpose(h, 24, 1, bias=True)
    last = f"conv2d_transpose_{b.counters['conv2d_transpose']}"
    weights, bias = _fit_detector_head(features, masks)
    b.set_weight(f"{last}.w_0", weights)
    b.set_weight(f"{last}.b_0", bias)
    probability = b.node("Sigmoid", [logits], "sigmoid_0")
    probability = b.save_output(probability)
    output = helper.make_tensor_value_info(
        probability,
        TensorProto.FLOAT,
        ["p2o.DynamicDimension.3", 1, "p2o.DynamicDimension.4", "p2o.DynamicDimension.5"],
    )
    model = b.model([info], [output])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return Path(path)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _fit_detector_head(features: np.ndarray, masks: np.ndarray, steps: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """The last ConvTranspose (C -> 1, kernel 2, stride 2) as a logistic regression on the text mask:
    output pixel (2i + a, 2j + b) reads feature pixel (i, j) through w[:, 0, a, b]. Text pixels weigh
    3x (DB's balanced loss keeps text and background comparable)."""
    _, channels, height, width = features.shape
    rows = features.transpose(0, 2, 3, 1).reshape(-1, channels).astype(np.float32)
    target = np.stack(
        [masks[:, a : 2 * height : 2, b : 2 * width : 2].reshape(-1) for a in range(2) for b in range(2)], 1
    ).astype(np.float32)
    keep = np.random.default_rng(0).permutation(len(rows))[: max(1, len(rows) // 4)]  # a quarter of the pixels
    rows, target = rows[keep], target[keep]
    scale = rows.std(0) + 1e-6
    rows = rows / scale
    weight = np.where(target > 0, 3.0, 1.0).astype(np.float32)
    params = {"w": np.zeros((channels, 4), np.float32), "b": np.zeros(1, np.float32)}

    def loss_and_grads(p):
        error = (_sigmoid(rows @ p["w"] + p["b"]) - target) * weight / len(rows)
        return None, {"w": rows.T @ error, "b": error.sum(keepdims=True).reshape(1)}

    _adam(params, loss_and_grads, steps, lr=0.1)
    w = (params["w"] / scale[:, None]).reshape(channels, 1, 2, 2)
    return w, params["b"]


def _hardswish(z: np.ndarray) -> np.ndarray:
    return z * np.clip(z / 6.0 + 0.5, 0.0, 1.0)


def build_recognizer(path: str | Path, seed: int = 0, fit_lines: int = 64, fit_width: int = 320) -> Path:
    """The CRNN-like CTC recognizer at ``path`` (see the module docstring); returns the path."""
    images, alignment = text_lines(fit_lines, fit_width, seed=seed + 200)
    info = _image_input(REC_HEIGHT, "p2o.DynamicDimension.1")
    b = _Builder("paddle-infer", images, seed)
    x = b.conv_bn("x", 3, 16, 3, 2, info, "hardswish")  # [16, 24, W/2]
    c = 16
    for c_out, expand, stride, act in (
        (32, 64, (2, 1), "relu"),
        (64, 128, (2, 2), "hardswish"),
        (96, 192, (2, 2), "relu6"),
    ):
        x = b.inverted_residual(x, c, expand, c_out, stride, act, info)
        x = b.inverted_residual(x, c_out, expand, c_out, 1, act, info)
        c = c_out
    x = b.conv_bn(x, c, 128, 3, 1, info, "hardswish")  # [128, 3, W/8]
    x = b.conv_bn(x, 128, 192, (3, 1), 1, info, "hardswish", pad=False)  # the height to 1: [192, 1, W/8]
    c = 192
    x = b.node("Squeeze", [x], "squeeze_0", axes=[2])  # opset 12: axes is an attribute
    x = b.node("Transpose", [x], "transpose_0", perm=[0, 2, 1])  # [N, T, 192]
    x = b.node("Reshape", [x, b.constant(np.array([0, -1, c], np.int64))], "reshape2_0")
    features = b.run(x, info)  # [N, T, 192]: neck and head are trained on the glyph alignment
    trained = _train_recognizer_head(features, alignment, np.random.default_rng(seed + 1))
    x = b.node("MatMul", [x, b.weight("linear_0.w_0", trained["w1"])], "linear_0")
    x = b.node("Add", [x, b.weight("linear_0.b_0", trained["b1"])], "linear_0")
    x = b.activation(x, "hardswish")
    logits = b.node("MatMul", [x, b.weight("linear_1.w_0", trained["w2"])], "linear_1")
    logits = b.node("Add", [logits, b.weight("linear_1.b_0", trained["b2"])], "linear_1")
    probabilities = b.save_output(b.node("Softmax", [logits], "softmax_2", axis=2))
    output = helper.make_tensor_value_info(
        probabilities, TensorProto.FLOAT, ["p2o.DynamicDimension.2", "p2o.DynamicDimension.3", NUM_CLASSES]
    )
    model = b.model([info], [output])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return Path(path)


def _train_recognizer_head(
    features: np.ndarray, alignment: np.ndarray, rng: np.random.Generator, hidden: int = 128, steps: int = 150
) -> dict[str, np.ndarray]:
    """MatMul + Add + HardSwish, MatMul + Add, trained with softmax cross-entropy on each step's
    aligned class (blank where no glyph starts): the peaky, mostly-blank output of a CTC model."""
    _, time_steps, channels = features.shape
    rows = features.reshape(-1, channels).astype(np.float32)
    labels = alignment[:, :time_steps].reshape(-1)
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    params = {
        "w1": rng.normal(0, np.sqrt(2.0 / channels), (channels, hidden)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": rng.normal(0, 0.01, (hidden, NUM_CLASSES)).astype(np.float32),
        "b2": np.zeros(NUM_CLASSES, np.float32),
    }

    spread = rows.std(0)

    def loss_and_grads(p):
        # features jittered as dropout and augmentation jitter a trained model's: a robust readout
        noisy = rows + NOISE * spread * rng.standard_normal(rows.shape).astype(np.float32)
        z = noisy @ p["w1"] + p["b1"]
        a = _hardswish(z)
        logits = a @ p["w2"] + p["b2"]
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        d_logits = (probs - onehot) / len(rows)
        d_a = d_logits @ p["w2"].T
        d_z = d_a * np.where(z < -3, 0.0, np.where(z > 3, 1.0, (2 * z + 3) / 6.0)).astype(np.float32)
        return None, {
            "w1": noisy.T @ d_z,
            "b1": d_z.sum(0),
            "w2": a.T @ d_logits,
            "b2": d_logits.sum(0),
        }

    _adam(params, loss_and_grads, steps, lr=1e-2)
    return params
