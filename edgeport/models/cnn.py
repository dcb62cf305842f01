"""A plain CNN family with a width multiplier and a depth, used for teachers and students."""

from __future__ import annotations

from torch import nn

from edgeport.models.registry import register_model

BASE_CHANNELS = 16


def cnn_channels(width: float, depth: int) -> list[int]:
    """Channels per block: 16*width, doubling each block (width=1, depth=3 gives 16-32-64)."""
    return [max(4, int(round(BASE_CHANNELS * width * 2**i))) for i in range(depth)]


class CNN(nn.Module):
    """``depth`` blocks of conv3x3-BN-ReLU; blocks after the first halve the resolution with max-pooling."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0, depth: int = 3) -> None:
        super().__init__()
        if not (isinstance(depth, int) and 1 <= depth <= 8):
            raise ValueError(f"depth must be an integer in 1..8, got {depth!r}")
        if not (isinstance(width, (int, float)) and 0 < width <= 16):
            raise ValueError(f"width must be in (0, 16], got {width!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out in enumerate(cnn_channels(float(width), depth)):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("cnn")
def cnn(in_channels: int, num_classes: int, width: float = 1.0, depth: int = 3) -> nn.Module:
    return CNN(in_channels, num_classes, width=width, depth=depth)
