"""The OOD gate of a `carelens export --flips` bundle: case `ood_flips`.

The flips graph averages each image's logits and features over the image and its two mirror images. Its gate's
model of the training data (class means, covariance, the k-NN bank) can come from the shipped graph's features of
every training image (3 views each: the export's longest part, what carelens did before) or from the trained
model's own features, already in the run (what it ships now); its scores are standardised and thresholded on the
shipped graph's validation outputs either way. Three gates are fitted on the same run, all with the energy of the
averaged logits: `mean` (training and every other image: the mean of the three views), `mixed` (training: the
image's own view, every other image: the mean; shipped), `own` (the image's own view throughout), and each is
measured on the test split against the far set (photographs, documents, charts, noise, blank) and the near set
(chest X-ray, breast ultrasound, fundus). `shipped` names the variant the export's own gate matches.

Usage: python bench/ood_flips.py [RUN ...]   (default: the chosen HAM10000 recipe's runs,
bench/out/ham_options/size160_s0/run and size160_s1/run)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import OUT, write_result
from _ood_sets import far_ood, modality, separation
from ham_options import spread
from ood_seeds import rescore

from carelens.bundle import load_bundle
from carelens.calibrate import OODGate
from carelens.preprocess import preprocess_batch
from carelens.steps import Run, calibrate_run
from carelens.steps.export import export_run

HERE = OUT / "ood_flips"
NEAR = ("xray", "ultrasound", "fundus")


def _views(run_fn: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over an input batch and its two mirror images: the mean logits, the image's own features, the mean features."""
    outs = [run_fn(np.ascontiguousarray(v)) for v in (x, x[..., ::-1], x[:, :, ::-1])]
    return np.mean([o[0] for o in outs], 0), outs[0][1], np.mean([o[1] for o in outs], 0)


def _outputs(run_fn: Any, images: list[np.ndarray], pre: Any) -> tuple[np.ndarray, ...]:
    parts = [_views(run_fn, preprocess_batch(images[k : k + 32], pre))
             for k in range(0, len(images), 32)]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


# variant -> (training features, features of every other image): 0 = the image's own view, 1 = the mean of the three
VARIANTS = {"own": (0, 0), "mean": (1, 1), "mixed": (0, 1)}


def measure(run_dir: Path, k: int) -> dict[str, Any]:
    rescore(run_dir)
    r = Run(run_dir)
    cal = calibrate_run(r)  # with this carelens's settings, as the export refits them
    t = time.perf_counter()
    flips = load_bundle(export_run(r, HERE / f"flips_{k}", name="derma-flips", version="bench", flips=True))
    export_s = time.perf_counter() - t
    plain = load_bundle(export_run(r, HERE / f"plain_{k}", name="derma", version="bench"))
    ds, splits = r.data()
    pre = r.config.preprocess
    ood = cal.report["ood"]

    def split_outputs(split: str) -> tuple[np.ndarray, ...]:
        return _outputs(plain.run, [img for _, img in ds.iter_images(splits.indices(ds, split))], pre)

    train_y = r.predictions().train_y  # the split's images in the order training (and the export) read them
    t = time.perf_counter()
    train = split_outputs("train")
    train_pass_s = time.perf_counter() - t  # the three views over the training split
    val, test = split_outputs("val"), split_outputs("test")
    far = _outputs(plain.run, list(far_ood().values()), pre)
    near = _outputs(plain.run, [img for m in NEAR for img in modality(m, 150)], pre)
    out: dict[str, Any] = {"export_s": round(export_s, 1), "train_views_pass_s": round(train_pass_s, 1)}
    for variant, (tr, other) in VARIANTS.items():
        gate = OODGate(ood["method"], ood["pass_rate"], confidence=ood.get("confidence")).fit(
            train[1 + tr], train_y, val[1 + other], val[0])
        if abs(gate.threshold_ - flips.ood.threshold_) < 1e-3 * max(1.0, abs(gate.threshold_)):
            out["shipped"] = variant  # the export's gate: the same training features and validation outputs
        s_in = gate.score(test[1 + other], test[0])
        for kind, o in (("far", far), ("near", near)):
            auroc, flagged = separation(s_in, gate.score(o[1 + other], o[0]), gate.threshold_)
            out[f"ood_auroc_{kind}_{variant}"], out[f"ood_flagged_{kind}_{variant}"] = round(auroc, 4), round(flagged, 4)
        out[f"ood_pass_rate_{variant}"] = round(float((s_in <= gate.threshold_).mean()), 4)
    print(run_dir, out, flush=True)
    return out


def main(runs: list[Path]) -> None:
    t0 = time.perf_counter()
    per = [measure(run, k) for k, run in enumerate(runs)]
    metrics: dict[str, Any] = {}
    for key in per[0]:
        if key != "shipped":
            metrics[key] = spread([p[key] for p in per])
    metrics["shipped"] = sorted({p.get("shipped", "none") for p in per})
    metrics["runs"] = [{"run": str(r), **p} for r, p in zip(runs, per, strict=True)]
    worst = {f"{m}_{v}": min(p[f"{m}_{v}"] for p in per) for m in ("ood_auroc_far", "ood_auroc_near", "ood_pass_rate")
             for v in VARIANTS}
    metrics["worst"] = worst
    print(write_result(
        "ood_flips", "ham10000", time.perf_counter() - t0, metrics, {},
        baseline={"name": "the gate fitted on the shipped graph's features of the training split (the flips export "
                          "before), same runs", "metrics": {k: v for k, v in worst.items() if k.endswith("_mean")}},
        notes=("command: python bench/ood_flips.py; *_mixed (shipped): training features the image's own view's "
               "(the trained model's), every other image's the mean over its three views; *_mean: the mean "
               "throughout (the export before); *_own: the image's own view throughout; all with the energy of "
               "the averaged logits; export_s: `carelens export --flips` as it is now, train_views_pass_s: the "
               "three views over the training split, what the export before also ran; far set: photographs, "
               "documents, charts, noise, blank; "
               f"near: {', '.join(NEAR)} (150 each)")))


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    main(args or [OUT / "ham_options" / f"size160_s{s}" / "run" for s in (0, 1)])
