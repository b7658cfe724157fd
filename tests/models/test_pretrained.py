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
