"""Bring your own model: an ONNX classifier made outside carelens (here: the tiny PneumoniaMNIST run's network,
exported by hand with other tensor names, once with its features, once ending in a softmax) becomes a bundle that
loads, predicts and serves like any other, calibrated as carelens calibrates its own models."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from carelens.bundle import load_bundle
from carelens.cli import app
from carelens.errors import ConfigError
from carelens.labels import LabelSpec
from carelens.predict import Engine
from carelens.steps.calibrate import fit_calibration
from carelens.steps.export import load_run_model
from carelens.steps.importer import import_onnx
from carelens.steps.run import Run


class _Foreign(torch.nn.Module):
    """Another team's export: its own names, features or a softmax at the end."""

    def __init__(self, model: torch.nn.Module, softmax: bool) -> None:
        super().__init__()
        self.model, self.softmax = model, softmax

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, feats, _ = self.model.forward_all(x)  # type: ignore[operator]
        return (torch.softmax(logits, 1),) if self.softmax else (logits, feats)


def _onnx(run: Path, path: Path, softmax: bool) -> Path:
    net = _Foreign(load_run_model(run), softmax).eval()
    s = Run(run).config.preprocess.image_size
    names = ["prob"] if softmax else ["scores", "embedding"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, 3, s, s),), str(path), input_names=["images"], output_names=names,
                          dynamic_axes={"images": {0: "n"}, **{k: {0: "n"} for k in names}}, opset_version=17,
                          dynamo=False)
    return path


def _preprocess_text(run: Path) -> str:
    p = Run(run).config.preprocess
    return (f"size={p.image_size},mean={','.join(map(str, p.mean))},std={','.join(map(str, p.std))},"
            f"resize={p.resize}")


@pytest.fixture(scope="module")
def imported(tiny_pneumonia_run: Path, pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("import")
    out = {}
    for kind in ("features", "softmax"):
        model = _onnx(tiny_pneumonia_run, root / f"{kind}.onnx", softmax=kind == "softmax")
        res = CliRunner().invoke(app, ["import", str(model), "--spec", "pneumoniamnist", "--data", str(pneumonia_npz),
                                       "--splits", str(Run(tiny_pneumonia_run).file(Run.SPLITS)),
                                       "--preprocess", _preprocess_text(tiny_pneumonia_run),
                                       "--out", str(root / kind), "--name", "chest-byo", "--version", "1"])
        assert res.exit_code == 0, res.output
        assert "imported" in res.output and "temperature" in res.output
        out[kind] = root / kind
    out["model"] = root / "features.onnx"
    return out


def test_imported_bundle_is_calibrated_as_carelens_calibrates_its_own(imported: dict[str, Path],
                                                                     tiny_pneumonia_run: Path) -> None:
    run = Run(tiny_pneumonia_run)
    own, _ = fit_calibration(run.predictions(), run.config.class_ids, run.config.spec)
    assert own.temperature is not None
    for kind, ood_reads in (("features", "features (embedding)"), ("softmax", "logits")):
        b = load_bundle(imported[kind])  # integrity and self-test
        rec = b.spec.training_config["imported"]
        assert rec["ood_reads"] == ood_reads and b.spec.model_io.fmap == [] and b.head_weight is None
        assert rec["outputs"] == ("probabilities (log appended to the graph)" if kind == "softmax" else "logits")
        # the same network on the same validation images: the same temperature (log-softmax is the logits
        # shifted per image, which a temperature does not see), up to ONNX vs PyTorch float differences
        assert abs(b.spec.temperature - own.temperature.temperature_) < 0.02, (kind, b.spec.temperature)
        assert b.spec.split is not None and b.spec.split.assignment_sha256 == run.splits().assignment_digest()
        assert 0.8 <= b.spec.calibration["coverage"] <= 1.0 and b.spec.test_metrics["balanced_accuracy"] > 0.6


def test_imported_bundle_predicts_like_any_other(imported: dict[str, Path], pneumonia_npz: Path,
                                                 tiny_pneumonia_run: Path) -> None:
    bundle = load_bundle(imported["features"])
    preds = Run(tiny_pneumonia_run).predictions()
    rows = [int(str(i).split("/")[1]) for i in preds.val_ids[:8]]  # ids are "val/<index in the npz>"
    with np.load(pneumonia_npz) as z:
        images = [np.repeat(z["val_images"][i][..., None], 3, axis=2) for i in rows]
    results = Engine(bundle).assess(images, heatmaps=True)
    assert [h for _, h in results] == [None] * 8  # no feature map: no heatmap, and no error
    # the calibrated probabilities are those of the run's own network on the same images
    expected = bundle.temperature.predict_proba(preds.val_logits[:8])
    for (a, _), p in zip(results, expected, strict=True):
        top = a.top[0]
        assert abs(top.probability - p[bundle.labels.class_ids.index(top.id)]) < 1e-3
        assert a.triage.level and a.prediction_set and a.in_distribution in (True, False)


class _Grey(torch.nn.Module):
    """A model that reads one grey channel (many X-ray models do): the run's network behind it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, _, _ = self.model.forward_all(x.repeat(1, 3, 1, 1))  # type: ignore[operator]
        return logits


def test_a_grey_model_is_fed_one_channel(tiny_pneumonia_run: Path, pneumonia_npz: Path, tmp_path: Path) -> None:
    run = Run(tiny_pneumonia_run)
    s = run.config.preprocess.image_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Grey(load_run_model(tiny_pneumonia_run)).eval(), (torch.zeros(2, 1, s, s),),
                          str(tmp_path / "grey.onnx"), input_names=["xray"], output_names=["scores"],
                          dynamic_axes={"xray": {0: "n"}, "scores": {0: "n"}}, opset_version=17, dynamo=False)
    args = ["import", str(tmp_path / "grey.onnx"), "--spec", "pneumoniamnist", "--data", str(pneumonia_npz),
            "--splits", str(run.file(Run.SPLITS)), "--out", str(tmp_path / "grey")]
    # one mean and std for every channel, as a grey model's card gives them; without color=L, a clear refusal
    res = CliRunner().invoke(app, [*args, "--preprocess", f"size={s},mean=0.5,std=0.5"])
    assert res.exit_code == 1 and "one channel" in res.output and "add color=L" in res.output
    res = CliRunner().invoke(app, [*args, "--preprocess", f"size={s},mean=0.5,std=0.5,color=L"])
    assert res.exit_code == 0, res.output
    b = load_bundle(tmp_path / "grey")  # integrity and self-test through the three-channel input
    # the test figures printed are the bundle's own calls (its finding weights), with what its decisions cost
    called = b.spec.calibration["balanced_accuracy"]
    assert f"test: balanced accuracy {called:.3f} as the bundle calls" in res.output
    assert "critical-miss" in res.output and "triage against each case's own level" in res.output
    assert b.spec.training_config["imported"]["inputs"].startswith("one grey channel")
    assert b.spec.preprocess.mean == (0.5, 0.5, 0.5) and b.spec.model_io.input == "xray_rgb"
    # the same network as the run's on the same validation images (grey, so every channel is the first one)
    own, _ = fit_calibration(run.predictions(), run.config.class_ids, run.config.spec)
    assert own.temperature is not None and abs(b.spec.temperature - own.temperature.temperature_) < 0.02


def test_wrong_preprocessing_or_class_order_is_refused(imported: dict[str, Path], pneumonia_npz: Path,
                                                       tiny_pneumonia_run: Path, tmp_path: Path) -> None:
    spec = Run(tiny_pneumonia_run).config.spec
    assert spec is not None
    splits = Run(tiny_pneumonia_run).file(Run.SPLITS)
    pre = Run(tiny_pneumonia_run).config.preprocess
    from carelens.preprocess import PreprocessConfig

    with pytest.raises(ConfigError, match=f"takes {pre.image_size}x{pre.image_size} images"):
        import_onnx(imported["model"], tmp_path / "b", spec=spec, data=pneumonia_npz, splits=splits,
                    preprocess_config=PreprocessConfig(image_size=pre.image_size + 4, mean=pre.mean, std=pre.std))
    reversed_spec = LabelSpec.model_validate({**spec.to_dict(), "classes": spec.to_dict()["classes"][::-1]})
    with pytest.raises(ConfigError, match="no better than chance.*order of the model's outputs"):
        import_onnx(imported["model"], tmp_path / "c", spec=reversed_spec, data=pneumonia_npz, splits=splits,
                    preprocess_config=pre)
    assert not (tmp_path / "c").exists()  # nothing half-written is left behind


def test_imported_bundle_is_served_and_evaluated(imported: dict[str, Path], pneumonia_npz: Path,
                                                 tiny_pneumonia_run: Path, tmp_path: Path) -> None:
    import io
    import shutil

    from fastapi.testclient import TestClient
    from PIL import Image

    from carelens.serve import ServeSettings, create_app

    with np.load(pneumonia_npz) as z:
        buf = io.BytesIO()
        Image.fromarray(z["test_images"][3]).save(buf, "PNG")
    xray_png = buf.getvalue()
    shutil.copytree(imported["softmax"], tmp_path / "models" / "chest-byo")
    settings = ServeSettings(models_dir=tmp_path / "models", database_url=f"sqlite:///{tmp_path / 'a.db'}")
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/models/chest-byo/predict?heatmap=true", files={"file": ("x.png", xray_png, "image/png")})
        assert r.status_code == 200, r.text
        assert r.json()["heatmap_png"] is None and r.json()["assessment"]["model"]["name"] == "chest-byo"
    res = CliRunner().invoke(app, ["evaluate", str(imported["softmax"]), str(pneumonia_npz), "--splits",
                                   str(Run(tiny_pneumonia_run).file(Run.SPLITS)), "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report" / "report.html").is_file() and (tmp_path / "report" / "metrics.json").is_file()


def test_import_takes_the_prediction_set_options_calibrate_takes(imported: dict[str, Path], pneumonia_npz: Path,
                                                                 tiny_pneumonia_run: Path, tmp_path: Path) -> None:
    """The conformal score, one threshold for all classes or one per class, and the critical-miss target reach an
    imported bundle as `carelens calibrate` applies them to a model trained here."""
    run = Run(tiny_pneumonia_run)
    res = CliRunner().invoke(app, ["import", str(imported["model"]), "--spec", "pneumoniamnist", "--data",
                                   str(pneumonia_npz), "--splits", str(run.file(Run.SPLITS)),
                                   "--preprocess", _preprocess_text(tiny_pneumonia_run), "--out", str(tmp_path / "aps"),
                                   "--score", "aps", "--no-class-conditional", "--alpha", "0.2",
                                   "--critical-miss-target", "0.05"])
    assert res.exit_code == 0, res.output
    b = load_bundle(tmp_path / "aps")
    assert b.conformal is not None
    got = b.conformal.to_dict()
    assert (got["score"], got["class_conditional"], got["alpha"]) == ("aps", False, 0.2)
    own, _ = fit_calibration(run.predictions(), run.config.class_ids, run.config.spec, alpha=0.2, score="aps",
                             class_conditional=False, critical_miss_target=0.05)
    assert own.conformal is not None  # the same network in PyTorch: the same threshold up to float differences
    assert abs(got["marginal_threshold"] - own.conformal.marginal_threshold_) < 0.02
    assert b.spec.calibration["decision_rule"]["target_critical_miss_rate"] == 0.05
