"""K-fold cross-validation: grouped, stratified folds; one run per fold; mean and sd of the test figures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from carelens.data import make_folds, open_dataset, write_synthetic_multilabel
from carelens.errors import ConfigError
from carelens.preprocess import PreprocessConfig
from carelens.train import TrainConfig, cross_validate


def test_folds_partition_the_data_and_keep_groups(tmp_path: Path) -> None:
    ds = open_dataset(write_synthetic_multilabel(tmp_path / "d", n=150, seed=2, size=40), "skin_conditions")
    folds = make_folds(ds, 3, seed=0)
    tests = [{ds[i].id for i in f.indices(ds, "test")} for f in folds]
    assert set().union(*tests) == set(ds.ids()) and sum(len(t) for t in tests) == len(ds)  # each image tested once
    for f in folds:
        by_group: dict[str, set[str]] = {}
        for e in ds:
            by_group.setdefault(str(e.group), set()).add(f.assignment[e.id])
        assert all(len(v) == 1 for v in by_group.values())  # mirrored twins stay together
        assert f.indices(ds, "val") and f.strategy.endswith("of3")
        c = Counter(cond for i in f.indices(ds, "test") for cond in (ds[i].findings or {}))
        assert len(c) == 7  # every condition in every fold's test split
    with pytest.raises(ConfigError, match="at least 2 folds"):
        make_folds(ds, 1)


def test_cross_validate_reports_mean_and_sd(tmp_path: Path) -> None:
    ds = open_dataset(write_synthetic_multilabel(tmp_path / "d", n=90, seed=4, size=40), "skin_conditions")
    cfg = TrainConfig(model="small_cnn", preprocess=PreprocessConfig(image_size=32), head_epochs=0, finetune_epochs=1,
                      patience=0, threads=2)
    doc = cross_validate(ds, make_folds(ds, 2, seed=0), cfg, tmp_path / "cv")
    assert doc["folds"] == 2 and len(doc["per_fold"]) == 2 and doc["task"] == "multilabel"
    f1 = [f["macro_f1"] for f in doc["per_fold"]]
    assert doc["summary"]["macro_f1"]["mean"] == pytest.approx(sum(f1) / 2)
    assert doc["summary"]["macro_f1"]["sd"] == pytest.approx(abs(f1[0] - f1[1]) / 2 ** 0.5)
    assert json.loads((tmp_path / "cv" / "crossval.json").read_text())["summary"] == doc["summary"]
    assert (tmp_path / "cv" / "fold_1" / "metrics.json").is_file() and (tmp_path / "cv" / "fold_2" / "best.pt").is_file()
