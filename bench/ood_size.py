"""How much of the training data the OOD gate reads per image, cases `ood_size_ham10000`, `ood_size_pneumoniamnist`.

Usage: python bench/ood_size.py [--case ham10000|pneumoniamnist] [RUN_DIR ...]
(default runs: ham10000, the progressive224 runs of bench/ham_options.py, 4 seeds; pneumoniamnist, bench/train.py's)

The gate ('combined': Mahalanobis, k-NN, energy) reads a whitening of the feature covariance and a bank of training
features for every image. Each run's gate is fitted on its training features and validation split as `carelens
calibrate` fits it, with the full covariance or its probabilistic-PCA model (64, 128, 256 leading directions, the
rest pooled), and a bank of 2,000, 1,000 or 500 training features; measured on the run's test split against the far
and near sets of bench/calibration.py (AUROC, share flagged, test pass rate), with the gate's time for one image at
batch 1, its statistics in the cache and after 64 MB have been read in between (as after a model run), one BLAS
thread as the engine runs it. Headline: the shipped gate's worst seed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import OUT, write_result
from _ood_sets import bundle_outputs, far_ood, modality, separation
from calibration import OTHER
from threadpoolctl import threadpool_limits

from carelens.bundle import load_bundle
from carelens.calibrate import OODGate
from carelens.steps import Run
from carelens.steps.export import export_run

VARIANTS: dict[str, dict[str, Any]] = {  # label -> OODGate settings
    "full_bank2000": {"components": None, "bank_max": 2000},  # the gate before both choices
    "full_bank1000": {"components": None, "bank_max": 1000},
    "full_bank500": {"components": None, "bank_max": 500},
    "ppca64_bank1000": {"components": 64, "bank_max": 1000},
    "ppca128_bank1000": {"components": 128, "bank_max": 1000},
    "ppca256_bank1000": {"components": 256, "bank_max": 1000},
}
_DEFAULT = OODGate()
SHIPPED = next(k for k, v in VARIANTS.items()
               if v == {"components": _DEFAULT.components, "bank_max": _DEFAULT.bank_max})  # calibrate's default


def _gate_ms(gate: OODGate, f: np.ndarray, lo: np.ndarray, evict: bool, calls: int = 60) -> float:
    sweep = np.ones((64 << 20) // 8)
    times = []
    with threadpool_limits(1):
        for _ in range(calls):
            if evict:
                sweep.sum()
            t = time.perf_counter()
            gate.score(f, lo)
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main(case: str, runs: list[Path]) -> None:
    t0 = time.perf_counter()
    far, near = list(far_ood().values()), [img for m in OTHER[case] for img in modality(m, 150)]
    per_run: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, run_dir in enumerate(runs):
            pred = Run(run_dir).predictions()
            bundle = load_bundle(export_run(run_dir, Path(tmp) / f"b{k}", name="bank", version="bench"))
            ff, fl = bundle_outputs(bundle, far)
            nf, nl = bundle_outputs(bundle, near)
            row: dict[str, Any] = {"run": str(run_dir)}
            for label, settings in VARIANTS.items():
                gate = OODGate(**settings).fit(pred.train_features, pred.train_y, pred.val_features, pred.val_logits)
                gate.save(Path(tmp) / "ood.npz")  # served as a bundle loads it: float32 statistics
                gate = OODGate.from_dict(gate.to_dict(), Path(tmp) / "ood.npz")
                s_in = gate.score(pred.test_features, pred.test_logits)
                far_auc, far_flag = separation(s_in, gate.score(ff, fl), gate.threshold_)
                near_auc, near_flag = separation(s_in, gate.score(nf, nl), gate.threshold_)
                one_f, one_l = pred.test_features[:1], pred.test_logits[:1]
                row[label] = {
                    "ood_auroc_far": round(far_auc, 4), "ood_auroc_near": round(near_auc, 4),
                    "ood_flagged_far": round(far_flag, 4), "ood_flagged_near": round(near_flag, 4),
                    "ood_pass_rate": round(float((s_in <= gate.threshold_).mean()), 4),
                    "gate_ms": round(_gate_ms(gate, one_f, one_l, evict=True), 3),
                    "gate_ms_cached": round(_gate_ms(gate, one_f, one_l, evict=False), 3),
                    "ood_npz_mb": round((Path(tmp) / "ood.npz").stat().st_size / 2**20, 1),
                }
                print(run_dir.parent.name, label, row[label], flush=True)
            per_run.append(row)
    metrics: dict[str, Any] = {}
    for label in VARIANTS:
        rows = [r[label] for r in per_run]
        worst = {h: min(r[h] for r in rows) for h in ("ood_auroc_far", "ood_auroc_near", "ood_pass_rate")}
        timing = {h: round(statistics.median(r[h] for r in rows), 3) for h in ("gate_ms", "gate_ms_cached")}
        metrics[label] = worst | timing | {"ood_npz_mb": rows[0]["ood_npz_mb"]}
    metrics |= metrics[SHIPPED]  # the shipped gate's figures, the headline
    metrics["gate_ms_before"] = metrics["full_bank2000"]["gate_ms"]
    metrics["runs"] = per_run
    print(write_result(
        f"ood_size_{case}", case, time.perf_counter() - t0, metrics,
        {"ood_auroc_far": 0.99, "ood_auroc_near": 0.95, "ood_pass_rate": 0.95},
        notes=f"command: python bench/ood_size.py --case {case} " + " ".join(map(str, runs))
              + f"; shipped: {SHIPPED} (full_bank2000: the gate before). "
              "Per variant (full: the Ledoit-Wolf covariance whole; ppcaR: its R leading directions, the rest at their "
              "mean variance; bankN: N training features for the k-NN distance): the worst of the runs' AUROC and test pass rate, the median of their gate times (one "
              "image, batch 1, one BLAS thread; gate_ms after reading 64 MB in between, as after a model run; "
              "gate_ms_cached without). Gates fitted as calibrate fits them (threshold passing 95% of validation "
              "images with probability 0.95), their statistics saved and loaded as a bundle holds them. Far and near "
              f"sets as bench/calibration.py's (near: {', '.join(OTHER[case])})."))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=("ham10000", "pneumoniamnist"), default="ham10000")
    ap.add_argument("runs", nargs="*", type=Path)
    a = ap.parse_args()
    default = sorted((OUT / "ham_options").glob("progressive224_s*/run")) if a.case == "ham10000" \
        else [OUT / "pneumoniamnist" / "run"]
    main(a.case, a.runs or default)
