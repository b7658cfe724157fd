"""The multi-label task through the one pipeline: train -> calibrate -> bundle -> engine -> CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from carelens.bundle import load_bundle
from carelens.cli import app
from carelens.data import read_image
from carelens.labels import TRIAGE_LEVELS
from carelens.policy import critical_miss_rate, over_triage_rate
from carelens.predict import Engine
from carelens.steps import Run


def test_training_recovers_known_labels(multilabel_run: Path) -> None:
    m = Run(multilabel_run).metrics()
    t = m["test"]
    assert t["macro_auc"] > 0.8, t["per_label_auc"]  # known drawn marks: far above chance (0.5)
    assert t["severity"]["n"] > 50 and t["severity"]["qwk"] > 0.2
    assert {"val_macro_f1", "val_macro_auc", "val_severity_qwk"} <= set(m["history"][-1])
    assert (multilabel_run / "curves.png").stat().st_size > 1000


def test_calibration_meets_its_false_negative_target(multilabel_bundle: Path, multilabel_run: Path) -> None:
    cal = json.loads((multilabel_run / "calibration.json").read_text())
    t = cal["test"]
    assert cal["task"] == "multilabel" and t["fnr_target"] == 0.1
    assert t["fnr"] <= 0.1 + 0.08  # in expectation <= alpha; one small test split varies around it
    assert t["mean_kept"] >= t["mean_true"] * 0.8
    floor = cal["severity_floor"]  # the severity rule's operating point, chosen on validation and shipped
    # the target calibrate's --critical-miss-target sets (0.02 by default, as for every bundle kind)
    assert floor["chosen"] in [r["severity_floor"] for r in floor["val"]] and floor["critical_miss_target"] == 0.02
    decision = json.loads((multilabel_bundle / "bundle.json").read_text())["decision"]
    assert decision["severity_floor"] == floor["chosen"]
    # then the rule at that floor (cross-fitted on validation): it ships, and its test figures sit beside the set rule's
    rule = cal["decision_rule"]
    assert decision["critical_threshold"] == rule["critical_threshold"] and rule["target_critical_miss_rate"] == 0.02
    shipped = next(r for r in rule["test"] if r["critical_threshold"] == rule["critical_threshold"])
    assert t["critical_miss_rate"] == shipped["critical_miss_rate"]
    assert t["critical_miss_rate_set_rule"] == rule["test"][0]["critical_miss_rate"]
    ops = cal["operating_points"]["test"]
    assert [o["alpha"] for o in ops] == [0.05, 0.1, 0.15, 0.2]
    assert ops[0]["mean_kept"] >= ops[-1]["mean_kept"]  # a lower risk keeps more conditions
    assert 0 <= t["over_triage_rate"] <= 1


def test_bundle_declares_the_task_and_the_engine_reports_findings(multilabel_bundle: Path, synth_root: Path) -> None:
    b = load_bundle(multilabel_bundle)
    assert b.spec.task == "multilabel" and b.spec.conformal is None and b.spec.multilabel is not None
    assert b.spec.multilabel.severity_sizes == [3] * 7 and b.layout is not None and b.layout.width == 28
    assert b.spec.parity["identical_decisions"]
    eng = Engine(b)
    paths = sorted(synth_root.glob("*/*/*.png"))[:6]
    results = list(eng.predict_paths(paths, heatmaps=True))
    for r in results:
        a = r.assessment
        assert a is not None and a.task == "multilabel" and a.coverage == 0.9
        for f in a.findings:
            assert f.severity in ("mild", "moderate", "severe", "early_signs", "advanced", "slight")
            assert abs(sum(f.severity_distribution.values()) - 1) < 1e-3
        assert set(a.prediction_set) == {f.id for f in a.findings if f.kept}
        assert r.finding_heatmaps is not None
        assert set(r.finding_heatmaps) == {f.id for f in a.findings if f.present}
        img = read_image(r.input)
        assert all(h.shape == img.shape[:2] and 0 <= h.min() and h.max() <= 1 for h in r.finding_heatmaps.values())
    # the condition probabilities are the calibrated sigmoid of the ONNX logits, one per condition
    inf = eng.infer([read_image(p) for p in paths])
    assert inf.proba.shape == (6, 7) and np.all((inf.proba > 0) & (inf.proba < 1))


def test_cli_predict_and_train_on_multilabel(multilabel_bundle: Path, synth_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    heat = tmp_path / "heat"
    folder = next(synth_root.glob("acne/severe"))
    res = runner.invoke(app, ["predict", str(multilabel_bundle), str(folder), "--heatmaps", str(heat),
                              "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert rows and all(r["assessment"]["task"] == "multilabel" for r in rows)
    n_present = sum(1 for r in rows for f in r["assessment"]["findings"] if f["present"])
    assert len(list(heat.glob("*.png"))) == n_present
    found = sum(any(f["id"] == "acne" and f["present"] for f in r["assessment"]["findings"]) for r in rows)
    assert found >= len(rows) * 0.6  # every image in acne/severe shows acne
    res = runner.invoke(app, ["data", "synth", "multilabel", "--out", str(tmp_path / "gen"), "--n", "12"])
    assert res.exit_code == 0 and len(list((tmp_path / "gen").glob("*/*/*.png"))) >= 12


def test_service_answers_with_findings(multilabel_bundle: Path, synth_root: Path, tmp_path: Path) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from carelens.serve import ServeSettings, create_app

    models = tmp_path / "models"
    shutil.copytree(multilabel_bundle, models / "skin")
    s = ServeSettings(models_dir=models, database_url=f"sqlite:///{tmp_path / 'audit.db'}")
    png = next(synth_root.glob("redness/*/*.png")).read_bytes()
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/models/skin/predict?heatmap=true", files={"file": ("x.png", png, "image/png")})
        assert r.status_code == 200, r.text
        a = r.json()["assessment"]
        assert a["task"] == "multilabel" and r.json()["heatmap_png"]
        assert all({"id", "probability", "present", "kept", "severity", "severity_distribution", "triage"} <= set(f)
                   for f in a["findings"])
        r = c.post("/v1/triage", data={"model": "skin"}, files={"image": ("x.png", png, "image/png")})
        assert r.status_code == 200 and r.json()["assessment"]["findings"] == a["findings"]
        page = c.get("/").text
        assert 'id="findings"' in page


def test_evaluate_reports_multilabel_figures(multilabel_bundle: Path, multilabel_run: Path, synth_root: Path,
                                             tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["evaluate", str(multilabel_bundle), str(synth_root), "--splits",
                                   str(multilabel_run / "splits.json"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["fnr_target"] == 0.1 and 0 <= m["fnr"] <= 1 and m["mean_kept"] > 0
    assert set(m["per_label"]) == set(m["per_label_calibration"]) and len(m["per_label"]) == 7
    for k in ("macro_f1", "micro_f1", "macro_auc", "subset_accuracy", "hamming_loss"):
        assert 0 <= m[k] <= 1
    assert {"accuracy", "weighted_f1", "mae", "qwk"} <= set(m["severity"])
    # the figures equal the calibrate step's on the same test split (one implementation)
    cal = json.loads((multilabel_run / "calibration.json").read_text())["test"]
    assert abs(m["macro_auc"] - cal["macro_auc"]) < 1e-3 and m["n"] == cal["n"]
    html = (tmp_path / "rep" / "report.html").read_text()
    assert 'id="per-class"' in html and 'id="findings"' in html and "Reliability per condition" in html
    # the rates are those of the levels the bundle gave (its own severity floor), recomputed from the predictions
    spec = load_bundle(multilabel_bundle).labels
    with np.load(tmp_path / "rep" / "predictions.npz") as z:
        given, y = [TRIAGE_LEVELS[r] for r in z["triage_rank"]], z["y"]
    assert m["critical_miss_rate"] == pytest.approx(critical_miss_rate(given, y, spec), nan_ok=True)
    assert m["over_triage_rate"] == pytest.approx(over_triage_rate(given, y, spec))
    # each image's level given against the level its true findings need (the rates' denominators: every image)
    t = m["triage_agreement"]
    assert sum(map(sum, t["counts"])) == m["n"] and 'id="triage-agreement"' in html
    assert 'id="decision-rule"' in html and "(shipped)" in html  # the rule chosen at calibration, beside the set rule
    assert t["below_own_level_rate"] + t["same_level_rate"] + t["above_own_level_rate"] == pytest.approx(1)
    assert "triage against each case's own level" in res.output
