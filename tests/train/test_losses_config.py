from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from carelens.config import AUGMENT_PRESETS, MIRRORING_PRESETS
from carelens.errors import ConfigError
from carelens.train import FocalLoss, TrainConfig, build_augment, build_loss, class_weights


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(64, 5, generator=g), torch.randint(0, 5, (64,), generator=g)
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0])
    assert torch.allclose(FocalLoss(0.0, w)(logits, y), F.cross_entropy(logits, y, weight=w), atol=1e-6)
    assert FocalLoss(2.0)(logits, y) < F.cross_entropy(logits, y)  # easy examples down-weighted


def test_class_weights_raise_the_cost_of_missing_a_rare_class() -> None:
    counts = [900, 100]
    w = class_weights(counts)
    assert w[1] / w[0] == pytest.approx(9.0) and w.mean() == pytest.approx(1.0)
    eff = class_weights(counts, "effective", 0.999)
    assert 1 < eff[1] / eff[0] < 9  # gentler than inverse frequency
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # predicts the majority for both
    y = torch.tensor([0, 1])
    plain = build_loss(["none"], counts)(logits, y)
    weighted = build_loss(["weighted"], counts)(logits, y)
    assert weighted > plain  # the rare-class miss now dominates
    with pytest.raises(ValueError, match="at least one training example"):
        class_weights([5, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "resnet9000"}, "model 'resnet9000' is unknown"),
        ({"lr_finetune": -1e-3}, "lr_finetune must be a positive number"),
        ({"imbalance": ("oversample",)}, "unknown"),
        ({"imbalance": ("none", "focal")}, "cannot be combined"),
        ({"head_epochs": 0, "finetune_epochs": 0}, "nothing would be trained"),
        ({"augment": "sepia"}, "augment must be one of"),
        ({"ema": 1.0}, "ema must be a decay in"),
        ({"mixup": -0.2}, "mixup must be a Beta concentration"),
        ({"width": 16}, "width applies to small_cnn only"),
        ({"model": "small_cnn", "width": 2}, "width must be >= 4"),
        ({"early_image_size": 224}, r"early_image_size must be in \[8, image_size\) \(image size 224\), got 224"),
        ({"early_image_size": 100}, "early_image_size and image_size must be multiples of 32 for efficientnet_lite0"),
        ({"early_image_size": 128, "finetune_epochs": 2, "final_size_epochs": 2},
         r"final_size_epochs must be in \[1, finetune_epochs\) so that some epochs run at the early size"),
    ],
)
def test_bad_config_fails_before_training(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"model": "small_cnn", "width": "wide"}, r"width: input should be a valid integer.*\(got 'wide'\)"),
        ({"finetune_epochs": 2.5}, r"finetune_epochs: input should be a valid integer, got a number with a fractional"),
        ({"preprocess": {"image_size": "big"}}, r"preprocess.image_size: input should be a valid integer"),
        ({"resize": "zoom"}, r"preprocess.resize: input should be 'stretch', 'pad' or 'center_crop' \(got 'zoom'\)"),
        ({"imbalance": ["weighted", 3]}, r"imbalance.1: input should be a valid string"),
        ({"width": 16, "augment": "sepia"}, r"augment must be one of .*; width applies to small_cnn only"),
    ],
)
def test_a_settings_file_of_the_wrong_types_names_each_setting(settings: dict, match: str) -> None:  # type: ignore[type-arg]
    """A JSON settings file is checked value by value against the recipe's types (a ConfigError, not a TypeError
    from deep inside), and the recipe's own checks keep their words."""
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(settings)


def test_config_round_trip() -> None:
    c = TrainConfig(imbalance=("weighted", "balanced_sampler"), seed=3)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown training settings: colour"):
        TrainConfig.from_dict({"colour": "red"})
    assert np.isfinite(TrainConfig().lr_head)


@pytest.mark.parametrize(("text", "match"), [(None, "not found"), ("{image_size: 160}", "not valid JSON"),
                                             ("[160]", "holds a list"), ('{"image_size": 160}', None)])
def test_settings_file_errors_say_what_is_wrong(tmp_path, text: str | None, match: str | None) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "settings.json"
    if text is not None:
        path.write_text(text)
    if match is None:
        assert TrainConfig.from_dict(TrainConfig.read_settings(path)).preprocess.image_size == 160
        return
    with pytest.raises(ConfigError, match=match):
        TrainConfig.read_settings(path)


def test_the_demo_recipe_is_a_valid_config() -> None:
    """`make demo` trains with scripts/demo_ham10000.json: a typo there must fail here, not 5 minutes into a demo."""
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parents[2] / "scripts" / "demo_ham10000.json").read_text())
    cfg = TrainConfig.from_dict(doc)
    assert cfg.finetune_epochs > 0 and cfg.head_epochs > 0 and "balanced_sampler" in cfg.imbalance


@pytest.mark.parametrize("preset", [p for p in AUGMENT_PRESETS if p != "none"])
def test_the_mirroring_presets_are_those_that_mirror_both_ways(preset: str) -> None:
    """export --flips trusts MIRRORING_PRESETS: it must name exactly the presets whose training mirrors both ways."""
    names = {type(t).__name__ for t in build_augment(preset, 32, 0).transforms}  # type: ignore[union-attr]
    assert ({"HorizontalFlip", "VerticalFlip"} <= names) == (preset in MIRRORING_PRESETS)
