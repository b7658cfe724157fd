"""A small multi-label run on generated data, shared by the pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.preprocess import PreprocessConfig


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from carelens.data import write_synthetic_multilabel

    return write_synthetic_multilabel(tmp_path_factory.mktemp("mlsynth") / "output_images", n=560, seed=11, size=64)


@pytest.fixture(scope="session")
def multilabel_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from carelens.data import make_splits, open_dataset
    from carelens.train import TrainConfig, train

    ds = open_dataset(synth_root, "skin_conditions")
    run = tmp_path_factory.mktemp("mlrun") / "run"
    cfg = TrainConfig(preprocess=PreprocessConfig(image_size=64), head_epochs=25, finetune_epochs=2,
                      unfreeze_stages=-1, lr_finetune=1e-3, threads=2, monitor="macro_f1")
    train(ds, make_splits(ds, seed=0), cfg, run)
    return run


@pytest.fixture(scope="session")
def multilabel_bundle(multilabel_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from carelens.steps import calibrate_run
    from carelens.steps.export import export_run

    calibrate_run(multilabel_run)
    return export_run(multilabel_run, tmp_path_factory.mktemp("mlbundle") / "skin", name="skin", version="1")
