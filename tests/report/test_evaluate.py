"""The HTML report: figures recomputed from saved predictions, and the page checked in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import CHROMIUM_ARGS
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from typer.testing import CliRunner

from carelens.bundle import load_bundle
from carelens.cli import app
from carelens.report import metrics_from_predictions
from carelens.steps import calibrate_run
from carelens.steps.export import export_run


def _report(bundle: Path, run: Path, data: str, out: Path) -> Path:
    res = CliRunner().invoke(app, ["evaluate", str(bundle), data, "--splits", str(run / "splits.json"),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def ham_report(ham_bundle: Path, tiny_ham_run: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _report(ham_bundle, tiny_ham_run, str(data_dir / "ham10000"), tmp_path_factory.mktemp("r") / "derma")


@pytest.fixture(scope="module")
def busi_report(tiny_busi_run: Path, busi_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("r")
    calibrate_run(tiny_busi_run)
    bundle = export_run(tiny_busi_run, tmp / "breast_bundle", name="breast", version="t")
    return _report(bundle, tiny_busi_run, str(busi_dir), tmp / "breast")


def test_metrics_match_a_recomputation_from_saved_predictions(ham_report: Path, ham_bundle: Path) -> None:
    m = json.loads((ham_report / "metrics.json").read_text())
    with np.load(ham_report / "predictions.npz") as z:
        y, proba, proba_raw, in_set = z["y"], z["proba"], z["proba_raw"], z["in_set"]
        in_dist, rank = z["in_distribution"], z["triage_rank"]
    weights = json.loads((ham_bundle / "bundle.json").read_text())["decision"].get("finding_weights")
    pred = (proba * np.asarray(weights)).argmax(1) if weights else proba.argmax(1)  # the class the bundle calls
    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    aucs = [roc_auc_score(y == c, proba[:, c]) for c in range(proba.shape[1]) if 0 < (y == c).sum() < len(y)]
    assert m["macro_auc"] == pytest.approx(np.mean(aucs))
    hit = in_set[np.arange(len(y)), y]
    assert m["coverage"] == pytest.approx(hit.mean())
    assert m["mean_set_size"] == pytest.approx(in_set.sum(1).mean())
    assert m["ood_pass_rate"] == pytest.approx(in_dist.mean())
    critical = np.isin(y, [0, 1, 4])  # akiec, bcc, mel
    assert m["critical_miss_rate"] == pytest.approx((rank[critical] < 2).mean())
    assert m["over_triage_rate"] == pytest.approx((rank[~critical] >= 2).mean())  # benign sent to urgent care
    own = np.asarray([2, 2, 0, 0, 2, 0, 1])[y]  # each class's own level in the ham10000 spec (akiec ... vasc)
    t = m["triage_agreement"]
    assert t["below_own_level_rate"] == pytest.approx((rank < own).mean())
    assert t["above_own_level_rate"] == pytest.approx((rank > own).mean())
    counts = np.zeros((5, 5), dtype=int)
    np.add.at(counts, (own, rank), 1)
    assert t["counts"] == counts.tolist()
    floor = np.where(in_dist, rank, 1)  # out-of-distribution images at the floor, consultation, alone
    assert m["critical_miss_rate_ood_at_floor"] == pytest.approx((floor[critical] < 2).mean())
    assert m["over_triage_rate_ood_at_floor"] == pytest.approx((floor[~critical] >= 2).mean())

    def ece(p: np.ndarray) -> float:
        conf, correct = p.max(1), (p.argmax(1) == y)
        bins = np.clip(np.ceil(conf * 15) - 1, 0, 14).astype(int)
        return float(sum(abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean()
                         for b in range(15) if (bins == b).any()))

    assert m["ece"] == pytest.approx(ece(proba), abs=1e-9)
    assert m["ece_before"] == pytest.approx(ece(proba_raw), abs=1e-9)
    assert m["per_class_recall"]["nv"] == pytest.approx((pred[y == 5] == 5).mean())
    # the bundle's facts fusion, measured on the same images beside the image alone
    f = m["facts_fusion"]
    assert f["facts"] == ["age", "localization", "sex"] and 0 <= f["conflict_rate"] < 0.5
    assert f["balanced_accuracy_image"] == m["balanced_accuracy"] and f["coverage_image"] == m["coverage"]
    assert f["critical_miss_rate_image"] == m["critical_miss_rate"]
    assert f["critical_miss_rate"] <= f["critical_miss_rate_image"]  # facts never lower a triage level
    assert f["coverage"] >= m["coverage"] - 0.1 and abs(f["balanced_accuracy"] - m["balanced_accuracy"]) < 0.2
    page = (ham_report / "report.html").read_text()
    assert 'id="facts"' in page
    assert 'id="operating-points"' in page  # the price of safety, per alpha
    assert 'id="decision-rule"' in page and "(shipped)" in page  # ... and per decision rule, the shipped one marked
    assert 'id="triage-agreement"' in page and f"{t['above_own_level_rate']:.3f}" in page
    floor = f"{m['critical_miss_rate_ood_at_floor']:.3f} / {m['over_triage_rate_ood_at_floor']:.3f}"
    assert "at the floor level alone" in page and floor in page


def test_busi_report_calls_each_image_as_its_bundle_does(busi_report: Path) -> None:
    # the tiny BUSI run's calibration ships finding weights where they earn it (measured here: tau 0.25, cross-fitted
    # validation gain 0.007); whatever it chose, the report's figures are those of the class the bundle calls
    bundle = json.loads((busi_report.parent / "breast_bundle" / "bundle.json").read_text())
    weights = bundle["decision"].get("finding_weights")
    assert weights == bundle["calibration"].get("finding_weights", {}).get("weights")
    m = json.loads((busi_report / "metrics.json").read_text())
    with np.load(busi_report / "predictions.npz") as z:
        y, proba = z["y"], z["proba"]
    called = (proba * np.asarray(weights)).argmax(1) if weights else proba.argmax(1)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, called))


def test_finding_weights_change_the_called_class_in_the_figures(ham_report: Path, ham_bundle: Path) -> None:
    with np.load(ham_report / "predictions.npz") as z:
        a = {k: z[k] for k in z.files}
    spec = load_bundle(ham_bundle).labels
    w = np.ones(len(spec.class_ids))
    w[spec.class_ids.index("nv")] = 0.2  # the common class weighed down: fewer nevi called
    plain, weighted = metrics_from_predictions(a, spec, 0.9), metrics_from_predictions(a, spec, 0.9, tuple(w))
    called = (a["proba"] * w).argmax(1)
    assert weighted["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(a["y"], called))
    assert (called != a["proba"].argmax(1)).any()  # so the two figures below come from different calls
    assert weighted["per_class_recall"]["nv"] <= plain["per_class_recall"]["nv"]
    assert weighted["macro_auc"] == pytest.approx(plain["macro_auc"])  # each class's own ranking: unchanged


@pytest.mark.parametrize("which", ["ham_report", "busi_report"])
def test_report_opens_offline_in_chromium(which: str, request: pytest.FixtureRequest, chromium: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    report: Path = request.getfixturevalue(which)
    m = json.loads((report / "metrics.json").read_text())
    n_classes = len(m["per_class"])
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: requests.append(req.url))
        page.goto((report / "report.html").as_uri())
        page.wait_for_load_state("load")
        title = page.title()
        rows = page.locator("#per-class tr").count() - 1
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        n_images = page.evaluate("document.images.length")
        page.screenshot(path=str(report / "screenshot.png"), full_page=True)
        browser.close()
    assert title.startswith("carelens evaluation:")
    assert rows == n_classes
    assert n_images >= 6 and broken == 0
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert (report / "screenshot.png").stat().st_size > 10_000


def test_compare_mode(ham_bundle: Path, tiny_ham_run: Path, data_dir: Path, tmp_path: Path) -> None:
    bundle = ham_bundle
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["evaluate", "--compare", str(bundle), str(bundle), str(data_dir / "ham10000"),
                                   "--splits", str(tiny_ham_run / "splits.json"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["a"]["balanced_accuracy"] == doc["b"]["balanced_accuracy"]
    assert "carelens comparison" in (out / "report.html").read_text()


def test_two_lanes_evaluate_exactly_as_one(ham_bundle: Path, tiny_ham_run: Path, data_dir: Path) -> None:
    from carelens.data import open_dataset
    from carelens.report import evaluate, resolve_splits

    bundle = load_bundle(ham_bundle, threads=1)
    ds, splits = resolve_splits(bundle, open_dataset(data_dir / "ham10000", bundle.labels),
                                tiny_ham_run / "splits.json")
    one, two = (evaluate(bundle, ds, splits, batch_size=8, lanes=k) for k in (1, 2))
    assert len(one.ids) > 3 * 8 and one.ids == two.ids  # several batches, answered in order
    for key in ("y", "logits", "in_set", "triage_rank"):
        assert np.array_equal(one.arrays[key], two.arrays[key]), key
    assert one.assessments == two.assessments and one.metrics["balanced_accuracy"] == two.metrics["balanced_accuracy"]
