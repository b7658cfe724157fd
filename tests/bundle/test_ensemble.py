"""`carelens export RUN --ensemble RUN2`: one graph averaging the models of runs trained alike (a deep ensemble),
calibrated on what that graph computes; its heatmap is the ensemble's own class-activation map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from carelens.bundle import load_bundle
from carelens.cli import app
from carelens.errors import ConfigError
from carelens.predict import Engine
from carelens.preprocess import preprocess
from carelens.steps import Run
from carelens.steps.export import export_run, load_run_model


def _val_batch(run: Run, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    ds, splits = run.data()
    images = [img for _, img in ds.iter_images(splits.indices(ds, "val")[:n])]
    return images, np.stack([preprocess(img, run.config.preprocess) for img in images])


def test_an_ensemble_bundle_averages_its_members(tiny_ham_run: Path, tiny_ham_member: Path, ham_calibration,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    out = tmp_path / "ens"
    res = CliRunner().invoke(app, ["export", str(tiny_ham_run), "--out", str(out), "--name", "derma-ens",
                                   "--version", "1", "--ensemble", str(tiny_ham_member)])
    assert res.exit_code == 0, res.output
    assert "ensemble of 2" in res.output and "top-1 agreement" in res.output
    doc = json.loads((out / "bundle.json").read_text())
    par = doc["parity"]
    assert doc["model_io"]["members"] == 2 and doc["model_io"].get("views") is None
    assert par["members"] == 2 and par["member_seeds"] == [0, 1] and par["fp32_vs_torch"]["identical_decisions"]
    assert doc["temperature"] != ham_calibration.temperature.temperature_  # refitted on the ensemble's outputs

    run = Run(tiny_ham_run)
    images, x = _val_batch(run, 8)
    m0, m1 = load_run_model(run), load_run_model(tiny_ham_member)
    with torch.inference_mode():
        (l0, f0, fm0), (l1, _, fm1) = (tuple(a.numpy() for a in m.forward_all(torch.from_numpy(x))) for m in (m0, m1))
    b = load_bundle(out)
    logits, feats = b.run(x)[:2]
    np.testing.assert_allclose(logits, (l0 + l1) / 2, atol=1e-4)
    assert min(np.abs(logits - l0).max(), np.abs(logits - l1).max()) > 1e-3  # neither member alone
    np.testing.assert_allclose(feats, f0, rtol=1e-4, atol=1e-3)  # the OOD gate reads the first member's features
    np.testing.assert_array_equal(b.ood.means_, run.calibration().ood.means_)  # and models its training data
    # the heatmap's head over the stacked feature maps gives the ensemble's logits exactly (pooled, plus bias)
    assert b.head_weight is not None and b.head_bias is not None
    pooled = np.concatenate([fm0, fm1], axis=1).mean(axis=(2, 3))
    np.testing.assert_allclose(pooled @ b.head_weight.T + b.head_bias, (l0 + l1) / 2, atol=1e-3)

    results = Engine(b).assess(images, heatmaps=True)
    assert all(a.model.name == "derma-ens" and h is not None and h.shape == img.shape[:2]
               for (a, h), img in zip(results, images, strict=True))


def test_an_ensemble_with_flips_averages_every_model_over_every_view(tiny_ham_run: Path, tiny_ham_member: Path,  # type: ignore[no-untyped-def]
                                                                      ham_calibration, tmp_path: Path) -> None:
    out = export_run(tiny_ham_run, tmp_path / "ensf", name="derma-ensf", version="1", flips=True,
                     ensemble=[tiny_ham_member])
    doc = json.loads((out / "bundle.json").read_text())
    assert doc["model_io"]["members"] == 2 and doc["model_io"]["views"] == "flips"
    run = Run(tiny_ham_run)
    images, x = _val_batch(run, 8)
    models = [load_run_model(run), load_run_model(tiny_ham_member)]
    with torch.inference_mode():
        outs = [m.forward_all(torch.from_numpy(np.ascontiguousarray(v))) for m in models
                for v in (x, x[..., ::-1], x[:, :, ::-1])]
    logits, feats = load_bundle(out).run(x)[:2]
    np.testing.assert_allclose(logits, np.mean([o[0].numpy() for o in outs], axis=0), atol=1e-4)
    np.testing.assert_allclose(feats, np.mean([o[1].numpy() for o in outs[:3]], axis=0), rtol=1e-4, atol=1e-3)  # the first's
    assert len(Engine(load_bundle(out)).assess(images)) == 8


def test_ensemble_members_must_be_the_same_recipe_on_the_same_split(tiny_ham_run: Path, tiny_pneumonia_run: Path,  # type: ignore[no-untyped-def]
                                                                   ham_calibration, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"differs .* in its model, classes, preprocessing, dataset, split"):
        export_run(tiny_ham_run, tmp_path / "mixed", ensemble=[tiny_pneumonia_run])
    with pytest.raises(ConfigError, match="twice"):
        export_run(tiny_ham_run, tmp_path / "twice", ensemble=[tiny_ham_run])
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "twice").exists()  # refused before writing
