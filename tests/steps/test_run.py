"""The run folder: one object owns its file names and reads back what training and calibration wrote."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from carelens.errors import DataError
from carelens.steps import Run, calibrate_run


def test_run_reads_a_config_written_before_the_recipe_held_its_preprocessing(tmp_path: Path) -> None:
    """Runs trained before the re-layering keep image_size/resize in the recipe and preprocess beside it."""
    old = {
        "train": {"model": "small_cnn", "pretrained": False, "image_size": 28, "resize": "pad", "batch_size": 64,
                  "head_epochs": 0, "finetune_epochs": 4, "imbalance": ["weighted"], "seed": 0, "threads": 2},
        "preprocess": {"image_size": 28, "resize": "pad", "color": "RGB", "mean": [0.5, 0.5, 0.5],
                       "std": [0.5, 0.5, 0.5]},
        "class_ids": ["normal", "pneumonia"],
        "dataset": {"name": "pneumoniamnist", "fingerprint": "abc", "n": 1948, "source": "/data/p.npz"},
        "spec": None,
    }
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = Run(tmp_path).config
    assert cfg.preprocess.image_size == 28 and cfg.preprocess.resize == "pad"
    assert cfg.train.model == "small_cnn" and cfg.train.imbalance == ("weighted",)
    assert cfg.train.width == 32  # the only small_cnn there was then
    assert cfg.dataset.source == "/data/p.npz" and cfg.class_ids == ["normal", "pneumonia"]
    again = type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict())))  # the current layout round-trips
    assert again == cfg


def test_missing_outputs_name_the_step_that_makes_them(tmp_path: Path) -> None:
    run = Run(tmp_path / "never-trained")
    with pytest.raises(DataError, match="no config.json; run `carelens train` first"):
        _ = run.config
    with pytest.raises(DataError, match="not a finished training run"):
        run.predictions()
    with pytest.raises(DataError, match=r"no calibration.json; run `carelens calibrate .*never-trained` first"):
        run.calibration()


def test_a_trained_run_holds_every_file_by_its_owner(tiny_pneumonia_run: Path) -> None:
    run = Run(tiny_pneumonia_run)
    for name in (Run.CONFIG, Run.SPLITS, Run.BEST, Run.LAST, Run.METRICS, Run.CURVES, Run.PREDICTIONS):
        assert run.file(name).is_file(), name
    ds, splits = run.data()
    p = run.predictions()
    assert len(p.val_y) == len(splits.indices(ds, "val")) and p.has_test
    assert run.config.preprocess.image_size == 28 and len(run.config.class_ids) == p.val_logits.shape[1]


def test_a_calibration_never_outlives_the_model_it_was_fitted_on(tiny_pneumonia_run: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_pneumonia_run, tmp_path / "run"))
    calibrate_run(copy)
    run = Run(copy)
    assert run.calibration().temperature is not None
    # the model's outputs change under it (a retraining, a copied file): the old temperature, thresholds and gate
    # would ship with the new model, so reading them is refused with the step that refits them
    p = run.predictions()
    run.write_predictions(dataclasses.replace(p, val_logits=2 * p.val_logits, test_logits=2 * p.test_logits))
    with pytest.raises(DataError, match=r"fitted on another model's outputs .*run `carelens calibrate .*run` again"):
        run.calibration()
    calibrate_run(copy)
    assert run.calibration().temperature is not None
    run.clear_calibration()  # what train does before a new model is trained in this folder
    assert not any(run.file(n).exists() for n in (Run.CALIBRATION, Run.OOD, Run.RELIABILITY, Run.OPERATING_POINTS))
