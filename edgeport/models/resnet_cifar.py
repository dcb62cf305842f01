"""CIFAR-style ResNet (He et al. 2016, section 4.2): 3 stages of basic blocks, 6n+2 layers."""

from __future__ import annotations

from torch import nn

from edgeport.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, depth: int = 20, width: int = 16) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 56, ...), got {depth!r}")
        if not (isinstance(width, int) and width >= 4):
            raise ValueError(f"width must be an integer >= 4, got {width!r}")
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        planes = width
        for stage in range(3):
            out = width * 2**stage
            for b in range(blocks):
                layers.append(BasicBlock(planes, out, stride=2 if (stage > 0 and b == 0) else 1))
                planes = out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


@register_model("resnet-cifar")
def resnet_cifar(in_channels: int, num_classes: int, depth: int = 20, width: int = 16) -> nn.Module:
    return CifarResNet(in_channels, num_classes, depth=depth, width=width)
