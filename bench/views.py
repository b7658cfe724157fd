"""Test-time views of the chosen HAM10000 recipe: the image alone, its two mirror images (`export --flips`, 3 views)
or all 8 symmetries of the square (`export --flips --quarter-turns`): case `ham10000_views`.

The recipe trains with the dermoscopy augment (mirror images and quarter turns), so each of the 8 views is an image
of the kind it learned from. Compared on VALIDATION only, on the four seeds of bench/ensemble.py (single models and
the two pairs s0+s1, s2+s3): balanced accuracy of the argmax (what chooses, as in bench/ensemble.py), and, less noisy
with 9 dermatofibromas and 12 vascular lesions among the 851 validation images, the threshold-free macro AUC and
the NLL after a temperature fitted on the same logits. The view set with the highest mean validation balanced
accuracy of the pairs is chosen; only then is the test split read: each pair exported with those views (`carelens
export RUN --ensemble RUN2 --flips [--quarter-turns]`, calibration refitted on its outputs) and measured by carelens's
own evaluation at the shipped operating point with its clinical facts (bench/ensemble.py's measured and
facts_figures), beside the flips pairs of the `ham10000` case, on the same test images, with the latency of each.

Usage: python bench/views.py   (about 30 minutes on 2 cores once the four runs of bench/ensemble.py exist)
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, RESULTS, resized_images, write_result
from ensemble import HERE as ENSEMBLES
from ensemble import PAIRS, SEEDS, facts_figures, facts_metrics, measured, ood_figures, run_dir
from ham_options import metrics_of, spread

from carelens.calibrate import TemperatureScaler
from carelens.data import open_dataset, split_dataset
from carelens.metrics import calibration_report
from carelens.models import ShippedGraph
from carelens.steps import Run
from carelens.steps.export import load_run_model
from carelens.train import predict_logits

HERE = OUT / "ham10000_views"
VIEW_SETS = {"plain": [0], "flips": [0, 1, 2], "dihedral": list(range(8))}  # indices into views()


def views(images: np.ndarray) -> list[np.ndarray]:
    """(N, S, S, 3) images in the 8 views the shipped graph averages, in its order (ShippedGraph.views itself, on
    the images as channels-first)."""
    chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return [v.numpy().transpose(0, 2, 3, 1) for v in ShippedGraph.views(chw, flips=True, quarter_turns=True)]


def val_logits(seed: int, images: np.ndarray) -> np.ndarray:
    """(8, N, classes) logits of a seed's run on each view of the validation images, cached."""
    cache = HERE / f"val_views8_s{seed}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return np.asarray(z["logits"])
    r = Run(run_dir(seed))
    model = load_run_model(r)
    out = np.stack([predict_logits(model, np.ascontiguousarray(v), r.config.preprocess)[0] for v in views(images)])
    np.savez(cache, logits=out)
    return out


def figures(y: np.ndarray, logits: np.ndarray, class_ids: list[str]) -> dict[str, float]:
    m = metrics_of(y, logits, class_ids)
    ts = TemperatureScaler().fit(logits, y)
    return {"balanced_accuracy": m["balanced_accuracy"], "macro_auc": m["macro_auc"],
            "mel_recall": m["per_class_recall"]["mel"], "nll": calibration_report(ts.predict_proba(logits), y)["nll"]}


def candidates(y: np.ndarray, logits: dict[int, np.ndarray], class_ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, idx in VIEW_SETS.items():
        for kind, groups in (("single", [(s,) for s in SEEDS]), ("pair", list(PAIRS))):
            rows = [figures(y, np.mean([logits[s][idx].mean(0) for s in g], axis=0), class_ids) for g in groups]
            out[f"{kind}_{name}"] = {f"val_{k}": spread([r[k] for r in rows]) for k in rows[0]}
            out[f"{kind}_{name}"]["val_per_member"] = rows
    return out


def chosen_bundles(rows: list[dict[str, Any]], oods: list[dict[str, Any]], ds: Any, splits: Any) -> dict[str, Any]:
    """The chosen view set's pairs as bench/ham_recipe.py reads a candidate's test figures (the shape of the
    ham10000_ensemble case): the image alone (mean over the pairs and spreads), the OOD gate, the shipped rules,
    and the clinical facts (facts_metrics)."""
    keys = [k for k in rows[0] if isinstance(rows[0][k], float) and k != "export_s"]
    out: dict[str, Any] = {key: round(statistics.fmean(r[key] for r in rows), 4) for key in keys}
    out["per_class_recall"] = {c: round(statistics.fmean(r["per_class_recall"][c] for r in rows), 4)
                               for c in rows[0]["per_class_recall"]}
    out["ensemble_over_pairs"] = {key: spread([r[key] for r in rows]) for key in keys}
    out["ood_over_pairs"] = {key: spread([o[key] for o in oods]) for key in oods[0]}
    out["decision_rules"] = [r["decision_rule"] for r in rows]
    out["wall_s"] = json.loads((RESULTS / "ham10000_ensemble.json").read_text())["metrics"]["wall_s"]  # same training
    return out | facts_metrics([facts_figures(f"ensemble_{k}_dihedral", ds, splits) for k in range(len(PAIRS))])


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    r0 = Run(run_dir(0))
    class_ids, pre = r0.config.class_ids, r0.config.preprocess
    idx = splits.indices(ds, "val")
    y = np.array([class_ids.index(ds[i].label) for i in idx])
    images = resized_images(ds, idx, pre)
    logits = {s: val_logits(s, images) for s in SEEDS}
    cands = candidates(y, logits, class_ids)
    chosen = max(VIEW_SETS, key=lambda v: cands[f"pair_{v}"]["val_balanced_accuracy"]["mean"])
    print(json.dumps({k: {m: v[m] for m in v if m != "val_per_member"} for k, v in cands.items()}, indent=1),
          "\nchosen on validation:", chosen, flush=True)
    metrics: dict[str, Any] = {"candidates": cands, "chosen": chosen}
    if chosen == "dihedral":
        rows, flips_rows = [], []
        for k, (a, b) in enumerate(PAIRS):
            name = f"ensemble_{k}_dihedral"
            row = measured(name, a, True, ds, splits, ensemble=[run_dir(b)], quarter_turns=True)
            facts = facts_figures(name, ds, splits)["test_facts"]
            rows.append({**row, "with_facts": facts})
            flips = json.loads((ENSEMBLES / f"ensemble_{k}.json").read_text())  # the ham10000 case's pair
            flips_rows.append({**flips, "with_facts": facts_figures(f"ensemble_{k}", ds, splits)["test_facts"]})
        keys = ("balanced_accuracy", "accuracy", "macro_auc", "mel_recall", "ece", "mean_set_size",
                "critical_miss_rate", "over_triage_rate")
        for label, rs in (("dihedral", rows), ("flips", flips_rows)):
            metrics[f"test_{label}_with_facts"] = {key: round(statistics.fmean(r["with_facts"][key] for r in rs), 4)
                                                   for key in keys}
            metrics[f"test_{label}_image_only"] = {key: round(statistics.fmean(r[key] for r in rs), 4)
                                                   for key in (*keys, "latency_p50_ms")}
            metrics[f"test_{label}_over_pairs"] = {key: spread([r["with_facts"][key] for r in rs]) for key in keys}
        metrics |= metrics["test_dihedral_with_facts"]
        metrics["latency_p50_ms"] = metrics["test_dihedral_image_only"]["latency_p50_ms"]
        metrics["pairs"] = rows
        metrics["chosen_bundles"] = chosen_bundles(rows, [ood_figures(f"ensemble_{k}_dihedral", ds, splits)
                                                          for k in range(len(PAIRS))], ds, splits)
    print(write_result(
        "ham10000_views", "ham10000", time.perf_counter() - t0, metrics,
        {"balanced_accuracy": 0.78, "accuracy": 0.85, "mean_set_size": 1.6},
        baseline={"name": "the same pairs with flips (3 views): the ham10000 case",
                  "metrics": metrics.get("test_flips_with_facts", {})},
        notes="command: python bench/views.py (after python bench/ensemble.py); the four size160 seeds of "
              "bench/ensemble.py; candidates on validation (851 images): the argmax of the mean logits over the "
              "views (plain; flips: the image and its two mirror images; dihedral: the 8 symmetries of the square), "
              "single models and the pairs s0+s1, s2+s3; nll after a temperature fitted on the same logits. Chosen "
              "by the pairs' mean validation balanced accuracy. Test figures only for the chosen view set: each pair "
              "exported with it (calibration refitted on its outputs) and measured with carelens.report.evaluate at "
              "the shipped operating point, with HAM10000's clinical facts (the headline, as in ham10000) and image "
              "only; beside them the ham10000 case's flips pairs on the same images; latency end to end, batch 1, "
              "150 test files."))


if __name__ == "__main__":
    main()
