"""HAM10000 recipe options (issue 16, item 2) at the `make demo` budget: each option is the demo recipe
(scripts/demo_ham10000.json: the head, then 3 fine-tune epochs at 128 px with the balanced sampler) with one
change, trained on the same lesion-grouped split with 2 seeds. Options are compared on VALIDATION only; the
test split is read for the chosen option alone (the trainer also writes test logits into each run folder; this
script does not read them for any other option).

Test-time augmentation (the mean logits over the image and its horizontal and vertical flips) needs no training:
it is measured on every run as its own column (``val_balanced_accuracy_tta``).

Usage: python bench/ham_options.py [OPTION ...] [--seeds 0,1]   (the lite1 option needs pip install -e ".[lite12]")
       python bench/ham_options.py --test-sizes OPTION   the train-test resolution effect: the option's runs on
                                                         validation at their training size and 32, 64, 96 px more
Each run is kept under bench/out/ham_options/<option>_s<seed>/ and skipped when already done, so the table can be
built in several sittings; the result file is rewritten after every run.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, RESULTS, resized_images, write_result

from carelens.data import open_dataset, split_dataset
from carelens.metrics import classification_metrics, softmax
from carelens.steps import Run
from carelens.steps.export import load_run_model
from carelens.train import TrainConfig, predict_logits, train

ROOT = Path(__file__).resolve().parents[1]
DEMO = json.loads((ROOT / "scripts" / "demo_ham10000.json").read_text())
OPTIONS: dict[str, dict[str, Any]] = {
    "demo_recipe": {},
    "ema": {"ema": 0.99},
    "mixup": {"mixup": 0.2},
    "lite1": {"model": "efficientnet_lite1"},
    "size160": {"image_size": 160},
    "sampler_weighted": {"imbalance": ["balanced_sampler", "weighted"]},  # square-rooted weights (build_loss)
    # progressive resizing: the head and the last fine-tune epoch at the size shipped, the first two epochs at 128 px
    "progressive224": {"image_size": 224, "early_image_size": 128, "final_size_epochs": 1},
    "progressive160": {"image_size": 160, "early_image_size": 128, "final_size_epochs": 1},
    # the chosen size with the other backbone (trained for bench/mixed_pairs.py; in the table like any option once run)
    "size160_lite1": {"image_size": 160, "model": "efficientnet_lite1"},
}
HERE = OUT / "ham_options"
CRITICAL = ("mel",)


def metrics_of(y: np.ndarray, logits: np.ndarray, class_ids: list[str]) -> dict[str, Any]:
    m = classification_metrics(y, softmax(logits), class_ids)
    return {"balanced_accuracy": m["balanced_accuracy"], "accuracy": m["accuracy"], "macro_auc": m["macro_auc"],
            "per_class_recall": m["per_class_recall"]}


def flip_views(images: np.ndarray, n_views: int = 3) -> tuple[np.ndarray, ...]:
    """(N, S, S, 3) images, then (with 3 views) mirrored left-right and top-bottom: the views flips average."""
    return (images, images[:, :, ::-1], images[:, ::-1])[:n_views]


def view_logits(run_dir: Path, images: np.ndarray, n_views: int = 3, dev: str = "cpu") -> list[np.ndarray]:
    """The run's best weights (on ``dev``) on ``images`` and, with 3 views, on their horizontal and vertical flips:
    one logits array per view, the plain images first."""
    r = Run(run_dir)
    model = load_run_model(r).to(dev)
    pre = r.config.train.preprocess
    return [predict_logits(model, np.ascontiguousarray(v), pre)[0] for v in flip_views(images, n_views)]


def run_logits(run_dir: Path, images: np.ndarray, tta: bool, dev: str = "cpu") -> np.ndarray:
    """Plain logits, or with ``tta`` the mean logits over the image and its two flips."""
    return np.mean(view_logits(run_dir, images, 3 if tta else 1, dev), axis=0)


def one(option: str, seed: int, ds: Any, splits: Any) -> dict[str, Any]:
    folder = HERE / f"{option}_s{seed}"
    done = folder / "result.json"
    if done.is_file():
        return dict(json.loads(done.read_text()))
    cfg = TrainConfig.from_dict({**DEMO, **OPTIONS[option], "seed": seed})
    t0 = time.perf_counter()
    res = train(ds, splits, cfg, folder / "run")
    wall = time.perf_counter() - t0
    out = {"option": option, "seed": seed, "wall_s": round(wall, 1), "config": cfg.to_dict(),
           **val_figures(res.run_dir, ds, splits)}
    done.write_text(json.dumps(out, indent=1))
    return out


def val_figures(run_dir: Path, ds: Any, splits: Any) -> dict[str, Any]:
    """A run's validation figures, plain (``val``) and with flips (``val_tta``); no test image is read."""
    r = Run(run_dir)
    pred = r.predictions()
    val_images = resized_images(ds, splits.indices(ds, "val"), r.config.train.preprocess)
    assert len(val_images) == len(pred.val_y), "an unreadable validation image: the flips would not line up"
    return {"val": metrics_of(pred.val_y, pred.val_logits, r.config.class_ids),
            "val_tta": metrics_of(pred.val_y, run_logits(run_dir, val_images, tta=True), r.config.class_ids)}


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by.setdefault(row["option"], []).append(row)
    out: dict[str, Any] = {}
    for option, rs in by.items():
        out[option] = {
            "seeds": [r["seed"] for r in rs],
            "val_balanced_accuracy": spread([r["val"]["balanced_accuracy"] for r in rs]),
            "val_balanced_accuracy_tta": spread([r["val_tta"]["balanced_accuracy"] for r in rs]),
            "val_macro_auc": spread([r["val"]["macro_auc"] for r in rs]),
            "val_mel_recall": spread([r["val"]["per_class_recall"]["mel"] for r in rs]),
            "wall_s": spread([r["wall_s"] for r in rs]),
        }
    return out


def test_sizes(option: str, ds: Any, splits: Any) -> dict[str, Any]:
    """Each run of ``option`` on validation at larger inference sizes than it was trained at, plain and with flips
    (the train-test resolution effect: Touvron et al. 2019, *Fixing the train-test resolution discrepancy*); kept in
    HERE/test_sizes_<option>.json. No test image is read."""
    found: dict[str, list[dict[str, Any]]] = {}
    val = splits.indices(ds, "val")
    for folder in sorted(HERE.glob(f"{option}_s*")):
        run = Run(folder / "run")
        pred = run.predictions()
        pre = run.config.train.preprocess
        for size in (pre.image_size + d for d in (0, 32, 64, 96)):
            views = view_logits(run.path, resized_images(ds, val, dataclasses.replace(pre, image_size=size)))
            found.setdefault(str(size), []).append(
                {"plain": metrics_of(pred.val_y, views[0], run.config.class_ids),
                 "flips": metrics_of(pred.val_y, np.mean(views, axis=0), run.config.class_ids)})
    out = {size: {"runs": len(rs),
                  "val_balanced_accuracy": spread([r["plain"]["balanced_accuracy"] for r in rs]),
                  "val_balanced_accuracy_tta": spread([r["flips"]["balanced_accuracy"] for r in rs]),
                  "val_mel_recall_tta": spread([r["flips"]["per_class_recall"]["mel"] for r in rs]),
                  "val_macro_auc_tta": spread([r["flips"]["macro_auc"] for r in rs])} for size, rs in found.items()}
    (HERE / f"test_sizes_{option}.json").write_text(json.dumps(out, indent=1))
    return out


def main(argv: list[str]) -> None:
    if argv[:1] == ["--test-sizes"]:
        ds = open_dataset("ham10000")
        splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
        t0 = time.perf_counter()
        print(json.dumps(test_sizes(argv[1], ds, splits), indent=1))
        rows = [json.loads(f.read_text()) for f in sorted(HERE.glob("*_s*/result.json"))]
        write(rows, time.perf_counter() - t0, ds, splits)
        return
    seeds = [0, 1]
    if "--seeds" in argv:
        k = argv.index("--seeds")
        seeds = [int(s) for s in argv[k + 1].split(",")]
        argv = argv[:k] + argv[k + 2 :]
    options = argv or list(OPTIONS)
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise SystemExit(f"unknown option(s) {unknown}; known: {', '.join(OPTIONS)}")
    HERE.mkdir(parents=True, exist_ok=True)
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    t0 = time.perf_counter()
    for option in options:
        for seed in seeds:
            one(option, seed, ds, splits)
            # the table holds every run done so far, of this sitting or an earlier one
            rows = [json.loads(f.read_text()) for f in sorted(HERE.glob("*_s*/result.json"))]
            write(rows, time.perf_counter() - t0, ds, splits)


def choose(tab: dict[str, Any], min_seeds: int = 2) -> dict[str, Any] | None:
    """The option (with or without flips) of the highest mean validation balanced accuracy over its seeds, among
    those measured on at least ``min_seeds`` seeds; None while there is none."""
    scores = {(o, tta): t["val_balanced_accuracy_tta" if tta else "val_balanced_accuracy"]["mean"]
              for o, t in tab.items() if len(t["seeds"]) >= min_seeds for tta in (False, True)}
    if not scores:
        return None
    option, tta = max(scores, key=lambda k: scores[k])
    return {"option": option, "tta": tta, "val_balanced_accuracy": scores[(option, tta)]}


def test_figures(folder: Path, tta: bool, ds: Any, splits: Any) -> dict[str, Any]:
    """A run's test figures (with flips when ``tta``), kept beside its result so that each table rewrite reads them
    back instead of running the model over the test split again."""
    done = folder / f"test{'_tta' if tta else ''}.json"
    if done.is_file():
        return dict(json.loads(done.read_text()))
    run = Run(folder / "run")
    pred = run.predictions()
    logits = pred.test_logits
    if tta:
        logits = run_logits(run.path, resized_images(ds, splits.indices(ds, "test"), run.config.train.preprocess), tta=True)
    out = metrics_of(pred.test_y, logits, run.config.class_ids)
    done.write_text(json.dumps(out, indent=1))
    return out


def write(rows: list[dict[str, Any]], wall: float, ds: Any, splits: Any) -> None:
    # options and resolutions whose runs are not in this checkout keep the figures the result file already records
    # (bench/out is not committed: a sitting that trains one option must not drop the others from the table)
    recorded = json.loads((RESULTS / "ham10000_options.json").read_text())["metrics"] \
        if (RESULTS / "ham10000_options.json").is_file() else {}
    tab = {**recorded.get("options", {}), **table(rows)}
    metrics: dict[str, Any] = {"options": tab}
    sizes = {**recorded.get("test_resolution", {}),
             **{f.stem.removeprefix("test_sizes_"): json.loads(f.read_text()) for f in sorted(HERE.glob("test_sizes_*.json"))}}
    if sizes:
        metrics["test_resolution"] = sizes  # option -> inference size -> validation figures (bench --test-sizes)
    chosen = choose(tab)
    tests = [] if chosen is None else [test_figures(HERE / f"{chosen['option']}_s{r['seed']}", chosen["tta"], ds, splits)
                                       for r in rows if r["option"] == chosen["option"]]
    if chosen is not None and not tests:  # chosen among recorded options only: its recorded test figures stand
        metrics["chosen"], metrics["chosen_test"] = recorded["chosen"], recorded["chosen_test"]
    elif chosen is not None:
        metrics["chosen"] = chosen
        metrics["chosen_test"] = {
            "balanced_accuracy": spread([t["balanced_accuracy"] for t in tests]),
            "accuracy": spread([t["accuracy"] for t in tests]),
            "macro_auc": spread([t["macro_auc"] for t in tests]),
            "mel_recall": spread([t["per_class_recall"]["mel"] for t in tests]),
        }
    print(write_result(
        "ham10000_options", "ham10000", wall, metrics, {}, split="val",
        notes="command: python bench/ham_options.py; each option is scripts/demo_ham10000.json (head + 3 fine-tune "
              "epochs at 128 px, balanced sampler) with one change, seeds 0 and 1 (size160 and the progressive ones also "
              "2 and 3, for the ensembles), split_dataset(ham10000, "
              "(0.7, 0.1, 0.2), seed=0) (lesion-grouped). Compared on validation (mean over seeds, min-max spread); "
              "test figures only for the chosen option. *_tta: mean logits over the image and its two flips. "
              "The demo budget, not the 45-minute recipe: a ranking at 3 epochs need not hold at 8. test_resolution "
              "(python bench/ham_options.py --test-sizes OPTION): the option's runs on validation at inference sizes "
              "above their training size (the train-test resolution effect), no retraining."))


if __name__ == "__main__":
    main(sys.argv[1:])
