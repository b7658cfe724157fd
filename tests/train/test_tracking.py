"""Experiment tracking: `train(..., tracker=MlflowTracker(...))` logs the recipe, every epoch and the run's files
to a local MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelens.data import make_splits, open_dataset, write_synthetic_multilabel
from carelens.errors import ConfigError
from carelens.preprocess import PreprocessConfig
from carelens.train import MlflowTracker, TrainConfig, make_tracker, train


def test_mlflow_logs_params_epochs_and_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # the default store is ./mlruns
    root = write_synthetic_multilabel(tmp_path / "data", n=90, seed=5, size=48)
    ds = open_dataset(root, "skin_conditions")
    tracker = MlflowTracker(experiment="carelens-test")
    assert tracker.uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    cfg = TrainConfig(model="small_cnn", preprocess=PreprocessConfig(image_size=32), head_epochs=0, finetune_epochs=2,
                      patience=0, threads=2)
    train(ds, make_splits(ds, seed=0), cfg, tmp_path / "run", tracker=tracker)
    client = mlflow.tracking.MlflowClient(tracker.uri)
    assert tracker.run_id is not None
    run = client.get_run(tracker.run_id)
    assert run.data.params["train.model"] == "small_cnn" and run.data.params["task"] == "multilabel"
    assert run.data.params["train.preprocess.image_size"] == "32"
    history = client.get_metric_history(tracker.run_id, "val_macro_f1")
    assert [h.step for h in history] == [1, 2]
    assert "test.macro_auc" in run.data.metrics and "seconds" in run.data.metrics
    files = {a.path for a in client.list_artifacts(tracker.run_id)}
    assert {"config.json", "metrics.json", "curves.png", "splits.json"} <= files
    assert (tmp_path / "mlruns" / "artifacts").is_dir()


def test_unknown_tracker_is_refused() -> None:
    assert make_tracker(None) is None and make_tracker("none") is None
    with pytest.raises(ConfigError, match="unknown tracker 'wandb'"):
        make_tracker("wandb")
