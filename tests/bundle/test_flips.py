"""`carelens export --flips`: the graph averages each image with its two mirror images (test-time augmentation
inside the model, so every caller gets it; with `--quarter-turns`, over the 8 symmetries of the square), and the calibration is refitted on what that graph computes (the OOD
gate's model of the training data staying the trained model's features)."""

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
from carelens.models import ShippedGraph
from carelens.predict import Engine
from carelens.preprocess import preprocess
from carelens.steps import Run
from carelens.steps.export import export_run, load_run_model


def test_the_flips_graph_is_the_mean_over_the_mirror_images(tiny_ham_run: Path, ham_calibration, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trained = json.loads((tiny_ham_run / "calibration.json").read_text())
    out = export_run(tiny_ham_run, tmp_path / "flips", name="derma-flips", version="1", flips=True)
    doc = json.loads((out / "bundle.json").read_text())
    par = doc["parity"]
    assert doc["model_io"]["views"] == "flips" and par["flips"] and not par["int8"]
    assert par["ood_training_features"] == "trained model"
    assert par["fp32_vs_torch"]["identical_decisions"] and par["images"] > 50
    assert doc["temperature"] != trained["temperature"]  # refitted on the averaged outputs, not copied

    run = Run(tiny_ham_run)
    ds, splits = run.data()
    images = [img for _, img in ds.iter_images(splits.indices(ds, "val")[:8])]
    x = np.stack([preprocess(img, run.config.preprocess) for img in images])
    model = load_run_model(run)
    with torch.inference_mode():
        views = [model(torch.from_numpy(np.ascontiguousarray(v))) for v in (x, x[..., ::-1], x[:, :, ::-1])]
    b = load_bundle(out)
    np.testing.assert_allclose(b.run(x)[0], torch.stack(views).mean(0).numpy(), atol=1e-4)
    plain = model(torch.from_numpy(x)).detach().numpy()
    assert np.abs(b.run(x)[0] - plain).max() > 1e-3  # the views change the answer: not a plain export
    gate = run.calibration().ood
    np.testing.assert_array_equal(b.ood.means_, gate.means_)  # the training features: the trained model's, no 3 views
    assert b.ood.threshold_ != gate.threshold_  # standardised and thresholded on the shipped graph's validation outputs

    results = Engine(b).assess(images, heatmaps=True)  # the engine serves it as any bundle
    assert all(a.model.name == "derma-flips" and h is not None and h.shape == img.shape[:2]
               for (a, h), img in zip(results, images, strict=True))


def test_flips_and_int8_together(tiny_ham_run: Path, ham_calibration, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The flips graph quantised like any other: calibrated on its own int8 outputs, self-test within int8 rounding."""
    out = export_run(tiny_ham_run, tmp_path / "flips8", name="derma-flips8", version="1", flips=True, int8=True)
    doc = json.loads((out / "bundle.json").read_text())
    par = doc["parity"]
    assert doc["model_io"]["views"] == "flips" and par["flips"] and par["int8"] and doc["selftest"]["atol"] == 0.25
    assert par["ood_training_features"] == "shipped graph"  # int8 changes the features: the training split is rerun
    assert abs(par["val_balanced_accuracy_shipped"] - par["val_balanced_accuracy_trained"]) < 0.15
    run = Run(tiny_ham_run)
    ds, splits = run.data()
    images = [img for _, img in ds.iter_images(splits.indices(ds, "test")[:16])]
    assert len(Engine(load_bundle(out)).assess(images)) == 16


def test_flips_are_refused_for_a_model_that_never_saw_a_mirror_image(tiny_pneumonia_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never mirrors"):  # chest x-rays: left and right matter
        export_run(tiny_pneumonia_run, tmp_path / "chest", flips=True)


def test_quarter_turns_average_the_eight_symmetries_of_the_square(tiny_ham_run: Path, ham_calibration, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`--flips --quarter-turns`: the graph's 8 views are the 8 distinct symmetries of the square (numpy's quarter turns
    and their mirror images), and the bundle's logits are the trained model's mean over them."""
    run = Run(tiny_ham_run)
    ds, splits = run.data()
    images = [img for _, img in ds.iter_images(splits.indices(ds, "val")[:6])]
    x = np.stack([preprocess(img, run.config.preprocess) for img in images])
    got = [v.numpy() for v in ShippedGraph.views(torch.from_numpy(x), True, True)]
    expected = [np.rot90(x, k, axes=(2, 3)) for k in range(4)]
    expected += [e[..., ::-1] for e in expected]
    assert len(got) == 8 and all(sum(np.array_equal(g, e) for g in got) == 1 for e in expected)  # each exactly once
    assert [np.array_equal(a, b) for a, b in zip(got[:3], (x, x[..., ::-1], x[:, :, ::-1]), strict=True)] == [True] * 3

    out = tmp_path / "d8"
    res = CliRunner().invoke(app, ["export", str(tiny_ham_run), "--out", str(out), "--flips", "--quarter-turns"])
    assert res.exit_code == 0, res.output
    assert "8 views" in res.output
    doc = json.loads((out / "bundle.json").read_text())
    assert doc["model_io"]["views"] == "dihedral" and doc["parity"]["views"] == 8
    model = load_run_model(run)
    with torch.inference_mode():
        mean = torch.stack([model(torch.from_numpy(np.ascontiguousarray(e))) for e in expected]).mean(0).numpy()
    np.testing.assert_allclose(load_bundle(out).run(x)[0], mean, atol=1e-4)
    with pytest.raises(ConfigError, match="add --flips"):
        export_run(tiny_ham_run, tmp_path / "turns", quarter_turns=True)
