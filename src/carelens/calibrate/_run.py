"""`carelens calibrate RUN`: fit temperature, conformal thresholds and the OOD gate on validation data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carelens.calibrate._conformal import ConformalClassifier, coverage_report
from carelens.calibrate._ood import OODGate
from carelens.calibrate._scores import calibration_report, softmax
from carelens.calibrate._temperature import TemperatureScaler
from carelens.errors import DataError
from carelens.labels import LabelSpec, triage_rank

__all__ = ["Calibration", "calibrate_run", "critical_miss_rate", "load_calibration"]


@dataclass
class Calibration:
    temperature: TemperatureScaler
    conformal: ConformalClassifier
    ood: OODGate
    report: dict[str, Any]


def _load_run(run: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    cfg_path, pred_path = run / "config.json", run / "predictions.npz"
    if not cfg_path.is_file() or not pred_path.is_file():
        raise DataError(f"{run} is not a finished training run (config.json and predictions.npz are needed); "
                        "run `carelens train` first")
    with np.load(pred_path) as z:
        arrays = {k: z[k] for k in z.files}
    if "train_features" not in arrays:
        raise DataError(f"{pred_path} has no training features (made by an older carelens); re-run training")
    return json.loads(cfg_path.read_text()), arrays


def critical_miss_rate(proba: np.ndarray, mask: np.ndarray, in_dist: np.ndarray, y: np.ndarray,
                       spec: LabelSpec, policy: Any = None,
                       fused: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> float:
    """Share of cases of a critical class (severity high/critical) triaged below ``consultation_24``.

    ``fused``: (probabilities, sets, conflicts) of image + clinical facts, to measure that decision instead.
    """
    from carelens.predict.decision import decide, decide_with_facts  # late: predict imports bundle -> calibrate
    from carelens.predict.schema import ModelRef

    critical = [i for i, c in enumerate(spec.classes) if c.is_critical]
    rows = [n for n in range(len(y)) if y[n] in critical]
    if not rows:
        return float("nan")
    ref = ModelRef(name=spec.name, version="eval")
    bar = triage_rank("consultation_24")

    def level(n: int) -> str:
        kw = dict(spec=spec, model=ref, coverage=0.0, in_distribution=bool(in_dist[n]), policy=policy)
        if fused is None:
            return decide(proba[n], mask[n], **kw).triage.level  # type: ignore[arg-type]
        return decide_with_facts(proba[n], mask[n], fused[0][n], fused[1][n], conflict=bool(fused[2][n]), **kw).triage.level

    return sum(triage_rank(level(n)) < bar for n in rows) / len(rows)


def calibrate_run(run: str | Path, *, alpha: float = 0.1, score: str = "lac", class_conditional: bool = True,
                  ood_method: str = "combined", pass_rate: float = 0.95, facts: Sequence[str] | None = None) -> Calibration:
    """Fit on the run's validation split; report on its test split; write calibration.json and ood.npz.

    ``facts``: clinical facts of the dataset (manifest columns such as age, sex, site) to fuse with the
    image model; ``None`` uses every fact the dataset has, ``[]`` none.
    """
    run = Path(run)
    cfg, a = _load_run(run)
    class_ids: list[str] = cfg["class_ids"]
    spec = LabelSpec.model_validate(cfg["spec"]) if cfg.get("spec") else None
    ts = TemperatureScaler().fit(a["val_logits"], a["val_y"])
    pv = ts.predict_proba(a["val_logits"])
    cp = ConformalClassifier(alpha, score, class_conditional).fit(pv, a["val_y"])  # type: ignore[arg-type]
    gate = OODGate(ood_method, pass_rate).fit(a["train_features"], a["train_y"], a["val_features"],  # type: ignore[arg-type]
                                              a["val_logits"])
    report: dict[str, Any] = {
        "temperature": ts.temperature_,
        "val": {"before": calibration_report(softmax(a["val_logits"]), a["val_y"]),
                "after": calibration_report(pv, a["val_y"])},
        "conformal": cp.to_dict(),
        "fallback_classes": [class_ids[i] for i in cp.fallback_classes_],
        "ood": gate.params(),
    }
    if cp.fallback_classes_:
        report["warnings"] = [
            f"class {class_ids[i]!r} has {int(cp.class_counts_[i])} validation examples, fewer than the "
            f"{cp.min_per_class_} its own {1 - alpha:.0%} guarantee needs: it uses the marginal threshold"
            for i in cp.fallback_classes_
        ]
    test = None
    if "test_logits" in a:
        y = a["test_y"]
        pt = ts.predict_proba(a["test_logits"])
        mask = cp.predict_set(pt)
        in_dist = gate.is_in_distribution(a["test_features"], a["test_logits"])
        test = (pt, mask, in_dist)
        before, after = calibration_report(softmax(a["test_logits"]), y), calibration_report(pt, y)
        report["test"] = {
            "ece_before": before["ece"], "ece": after["ece"], "mce": after["mce"], "brier_before": before["brier"],
            "brier": after["brier"], "nll_before": before["nll"], "nll": after["nll"],
            "reliability_before": before["reliability"], "reliability": after["reliability"],
            **coverage_report(mask, y, class_ids),
            "ood_pass_rate": float(in_dist.mean()),
            "critical_miss_rate": critical_miss_rate(pt, mask, in_dist, y, spec) if spec else None,
        }
    if facts is None or facts:
        section = _fit_facts(cfg, spec, run, a, pv, cp, facts, test)
        if section is not None:
            report["facts"] = section
    (run / "calibration.json").write_text(json.dumps(report, indent=1))
    gate.save(run / "ood.npz")
    _plot_reliability(report, run / "reliability.png")
    return Calibration(ts, cp, gate, report)


def _fit_facts(cfg: dict[str, Any], spec: LabelSpec | None, run: Path, a: dict[str, np.ndarray], pv: np.ndarray,
               cp: ConformalClassifier, names: Sequence[str] | None,
               test: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> dict[str, Any] | None:
    """Fit the facts model (train split) and its fusion with the image (val probabilities ``pv``); measure
    it on the test split's image probabilities, sets and OOD verdicts (``test``)."""
    from carelens.data import load_run_splits, open_dataset  # late: the data layer is only needed here
    from carelens.symptoms._facts import FactsFusion, infer_fact_kinds

    source = cfg.get("dataset", {}).get("source")
    try:
        ds, splits = load_run_splits(run / "splits.json", open_dataset(source, spec))
    except (DataError, TypeError) as exc:
        if names:
            raise DataError(f"facts fusion needs the run's data ({source}): {exc}") from None
        return None
    if not any(e.facts for e in ds):
        if names:
            raise DataError(f"the run's data ({source}) has no clinical facts; it has only images and labels")
        return None
    by_id = {e.id: e for e in ds}
    class_ids: list[str] = cfg["class_ids"]
    rows = lambda ids: [dict(by_id[str(i)].facts) for i in ids]
    train_ids = [ds[i].id for i in splits.indices(ds, "train")]
    numeric, categorical = infer_fact_kinds(rows(train_ids), names)
    fusion = FactsFusion(numeric, categorical, alpha=cp.alpha, score=cp.score, class_conditional=cp.class_conditional)
    fusion.fit(rows(train_ids), np.asarray([class_ids.index(by_id[i].label) for i in train_ids]),
               rows(a["val_ids"]), pv, a["val_y"])
    section: dict[str, Any] = {"fusion": fusion.to_dict(), "schema": fusion.schema()}
    if test is not None:
        pt, mask, in_dist = test
        section["test"] = fusion.measure(pt, mask, rows(a["test_ids"]), a["test_y"], class_ids, spec=spec,
                                         in_distribution=in_dist)
    return section


def load_calibration(run: str | Path) -> Calibration:
    run = Path(run)
    p = run / "calibration.json"
    if not p.is_file():
        raise DataError(f"{run} has no calibration.json; run `carelens calibrate {run}` first")
    rep = json.loads(p.read_text())
    ts = TemperatureScaler()
    ts.temperature_ = float(rep["temperature"])
    return Calibration(ts, ConformalClassifier.from_dict(rep["conformal"]), OODGate.load(run / "ood.npz", rep["ood"]), rep)


def _plot_reliability(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section = report.get("test") or {}
    pairs = [("before", section.get("reliability_before") or report["val"]["before"]["reliability"]),
             ("after", section.get("reliability") or report["val"]["after"]["reliability"])]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), sharey=True)
    for ax, (name, r) in zip(axes, pairs, strict=True):
        edges = np.asarray(r["edges"])
        mids = (edges[:-1] + edges[1:]) / 2
        acc = np.nan_to_num(np.asarray(r["accuracy"], dtype=float))
        ax.bar(mids, acc, width=edges[1] - edges[0], edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        ax.set_title(f"{name} temperature scaling ({'test' if section else 'val'})")
        ax.set_xlabel("confidence")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
