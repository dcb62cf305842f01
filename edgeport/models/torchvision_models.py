"""torchvision architectures adapted to the dataset's channels and classes (random init, no download)."""

from __future__ import annotations

from torch import nn

from edgeport.errors import ModelError
from edgeport.models.registry import register_model

# Below this input size the ImageNet stem (stride-2 conv + max-pool) would shrink a 32x32 image
# to 1x1 before the last stage, so small inputs get the CIFAR-style stem instead.
SMALL_INPUT = 64


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's kernel size, stride or padding: torch types them as tuples of any length; they have two."""
    return value[0], value[1]


def _replace_conv(conv: nn.Conv2d, in_channels: int, stride: int | None = None) -> nn.Conv2d:
    padding = conv.padding
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        _pair(conv.kernel_size),
        stride=_pair(conv.stride) if stride is None else stride,
        padding=padding if isinstance(padding, str) else _pair(padding),
        groups=1,
        bias=conv.bias is not None,
    )


@register_model("resnet18")
def resnet18(in_channels: int, num_classes: int, image_size: int = 224) -> nn.Module:
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=num_classes)
    if image_size < SMALL_INPUT:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = _replace_conv(model.conv1, in_channels)
    return model


def _adapt_mobilenet_stem(model: nn.Module, in_channels: int, image_size: int) -> nn.Module:
    """MobileNets start with features[0][0], a stride-2 conv: fit its channels, and drop its stride
    for small inputs."""
    if in_channels != 3 or image_size < SMALL_INPUT:
        features = model.features
        stem = features[0] if isinstance(features, nn.Sequential) else None
        conv = stem[0] if isinstance(stem, nn.Sequential) else None
        if not isinstance(stem, nn.Sequential) or not isinstance(conv, nn.Conv2d):
            raise ModelError(f"{type(model).__name__}: expected a conv layer at features[0][0]")
        stride = 1 if image_size < SMALL_INPUT else None
        stem[0] = _replace_conv(conv, in_channels, stride)
    return model


@register_model("mobilenet_v2")
def mobilenet_v2(in_channels: int, num_classes: int, image_size: int = 224) -> nn.Module:
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    return _adapt_mobilenet_stem(tv_mobilenet_v2(weights=None, num_classes=num_classes), in_channels, image_size)


@register_model("mobilenet_v3_small")
def mobilenet_v3_small(in_channels: int, num_classes: int, image_size: int = 224) -> nn.Module:
    from torchvision.models import mobilenet_v3_small as tv_mobilenet_v3_small

    return _adapt_mobilenet_stem(tv_mobilenet_v3_small(weights=None, num_classes=num_classes), in_channels, image_size)
