"""The chosen HAM10000 recipe at GPU resolutions (issue 16, item 2: "where a GPU is available, run the same recipe
at 224-260 px there too, as a separate case with the device named"). carelens stays CPU-first: this case only
says what the same recipe gives when a GPU affords larger images; `carelens train` uses CUDA with bf16 autocast
when one is present, and nothing else changes.

Three steps, because the GPU machine is a different computer that sees only what is carried to it:

  python bench/ham_gpu.py pack            (here) the training and validation images of the benchmark's split and
                                          the split file, under bench/out/ham_gpu/carry/. The test images are not
                                          carried: they never reach the GPU machine.
  python bench/ham_gpu.py train OUT [--sizes 224,256] [--seeds 0,1] [--epochs 3] [--budget-s S]
                                          (on the GPU machine, CARELENS_DATA=bench/out/ham_gpu/carry) one run per
                                          size and seed, each measured there on validation (plain and with flips);
                                          the size and flips chosen on validation alone (--epochs: fine-tune epochs,
                                          the recipe's 3 unless given); OUT/ham_gpu_device.json and
                                          the chosen size's runs (best weights, config, metrics) as
                                          OUT/ham_gpu_<size>_s<seed>.tar.<part>. No new run starts after S seconds.
  python bench/ham_gpu.py compare CASE OUT [OUT ...]
                                          (here) the validation figures measured there, as one options table in
                                          bench/results/CASE.json; no test image is read (ham10000_gpu_epochs: the
                                          same recipe at 160 px with 3 and with 8 fine-tune epochs)
  python bench/ham_gpu.py score OUT [OUT ...] [--case ham10000_gpu_12ep]
                                          (here, on the CPU) the runs of one or more such calls together, the size
                                          and flips chosen again over all of them on validation, the chosen runs on
                                          the test split, once, and on validation again: bench/results/ham10000_gpu.json
                                          (--case ham10000_gpu_12ep: the runs of SIZES=224 EPOCHS=12, 12 fine-tune
                                          epochs instead of 3, as their own case).

The recipe is scripts/demo_ham10000.json (the head, then 3 fine-tune epochs with the balanced sampler), chosen at
160 px on the CPU by bench/ham_options.py; only the image size changes. HAM10000 here is 200x150 px, so 224 and
256 px are upsampled: a larger input gives the network finer feature maps, not more detail.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, machine, resized_images, write_result
from ham_options import DEMO, choose, metrics_of, run_logits, spread, table, view_logits

from carelens.data import load_splits, open_dataset, split_dataset
from carelens.steps import Run
from carelens.train import TrainConfig, train

HERE = OUT / "ham_gpu"
CARRY = HERE / "carry"
RUN_FILES = (Run.CONFIG, Run.METRICS, Run.BEST)
PART = 15 * 2**20  # a file that comes back from the GPU machine may have 16 MiB


def pack() -> None:
    """The train and validation images of split_dataset(ham10000, (0.7, 0.1, 0.2), seed=0) with their metadata rows,
    and the split file, under CARRY (about 27 MB)."""
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    keep = {ds[i].id: ds[i].path for s in ("train", "val") for i in splits.indices(ds, s)}
    shutil.rmtree(CARRY, ignore_errors=True)
    images = CARRY / "ham10000" / "images_200x150"
    images.mkdir(parents=True)
    with (Path(str(ds.root)) / "HAM10000_metadata.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if r["image_id"] in keep]
    with (CARRY / "ham10000" / "HAM10000_metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    for path in keep.values():
        shutil.copyfile(path, images / Path(path).name)
    splits.save(CARRY / "splits.json", ds)
    size = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file())
    print(f"{len(kept)} images (train + val) and the split file under {CARRY}: {size / 1e6:.1f} MB")


def _device() -> dict[str, Any]:
    info = machine()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
    return info


def train_runs(out: Path, sizes: list[int], seeds: list[int], budget_s: float, epochs: int | None = None) -> None:
    """On the GPU machine: each run, its validation figures (plain and flips, measured there), the choice, and the
    chosen size's runs packed into ``out`` (every file under the 16 MiB a returned file may have)."""
    ds = open_dataset("ham10000")
    splits = load_splits(CARRY / "splits.json")  # made for the whole set: this copy holds its train and val part
    if any(splits.assignment.get(e.id) not in ("train", "val") for e in ds):
        raise SystemExit("the carried images must all be train or validation images of the split file")
    val = splits.indices(ds, "val")
    y = [ds[i].label for i in val]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"machine": _device(), "runs": []}
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for size in sizes:
        images = None
        for seed in seeds:
            done = doc["runs"]  # the next run's time, guessed from the longest so far (pixels grow as size**2)
            guess = max((r["wall_s"] * max(1.0, (size / r["size"]) ** 2) for r in done), default=0.0)
            if time.perf_counter() - t0 + guess > budget_s:  # it would not end inside the budget
                print(f"budget of {budget_s:.0f} s: no run at {size} px seed {seed}")
                continue
            longer = f"_{epochs}ep" if epochs is not None else ""
            name = f"ham_gpu_{size}{longer}_s{seed}"
            cfg = TrainConfig.from_dict({**DEMO, "image_size": size, "seed": seed,
                                         **({"finetune_epochs": epochs} if epochs is not None else {})})
            t = time.perf_counter()
            res = train(ds, splits, cfg, HERE / name / "run", evaluate_test=False)
            wall = time.perf_counter() - t
            if images is None:
                images = resized_images(ds, val, cfg.preprocess)
            ids = Run(res.run_dir).config.class_ids
            yi = np.asarray([ids.index(c) for c in y])
            views = view_logits(res.run_dir, images, dev=dev)  # the plain view once, for both figures
            doc["runs"].append({"name": name, "option": f"{size}px{longer}", "size": size, "seed": seed,
                                "finetune_epochs": cfg.finetune_epochs, "wall_s": round(wall, 1),
                                "val": metrics_of(yi, views[0], ids),
                                "val_tta": metrics_of(yi, np.mean(views, axis=0), ids)})
            (out / "ham_gpu_device.json").write_text(json.dumps(doc, indent=1))
            print(name, f"{wall:.0f} s", doc["runs"][-1]["val"]["balanced_accuracy"], flush=True)
    doc["options"] = table(doc["runs"])
    doc["chosen"] = choose(doc["options"], min_seeds=1)
    (out / "ham_gpu_device.json").write_text(json.dumps(doc, indent=1))
    if doc["chosen"] is None:
        return
    for r in doc["runs"]:
        if r["option"] == doc["chosen"]["option"]:
            data = _tar(HERE / r["name"] / "run")
            for k in range(0, len(data), PART):
                (out / f"{r['name']}.tar.{k // PART}").write_bytes(data[k : k + PART])


def _tar(run_dir: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in RUN_FILES:
            tar.add(run_dir / f, arcname=f)
    return buf.getvalue()


def compare(case: str, returned: list[Path]) -> None:
    """Validation only: the runs of one or more GPU calls as one options table (mean and min-max over seeds)."""
    docs = [json.loads((d / "ham_gpu_device.json").read_text()) for d in returned]
    if any(doc["machine"] != docs[0]["machine"] for doc in docs):
        raise SystemExit("the runs came from different machines: compare each machine's runs apart")
    runs = [r for doc in docs for r in doc["runs"]]
    options = table(runs)
    for option, row in options.items():
        row["finetune_epochs"] = sorted({r.get("finetune_epochs", DEMO["finetune_epochs"]) for r in runs
                                         if r["option"] == option})
    print(write_result(
        case, "ham10000", sum(r["wall_s"] for r in runs), {"options": options, "chosen": choose(options)}, {},
        split="val", machine_info=docs[0]["machine"],
        notes="commands: python bench/ham_gpu.py pack (here); SIZES=160 EPOCHS=8 CUDA_TEST=0 bash bench/ham_gpu.sh and "
              "SIZES=160 CUDA_TEST=0 bash bench/ham_gpu.sh, seeds 0 and 1 in two calls each (on the GPU machine named "
              "in `machine`, bf16 autocast); python bench/ham_gpu.py compare ham10000_gpu_epochs OUT... (here). The "
              "recipe of scripts/demo_ham10000.json at 160 px (the CPU choice) with its 3 fine-tune epochs and with 8 "
              "(about what 45 minutes of this 2-core CPU allows at 160 px), validation figures measured on the GPU "
              "machine; the test split was not read. wall_s: GPU training time summed over the runs."))


NOTES = {
    "ham10000_gpu": "the runs of bench/ham_gpu.sh at 224 px and of the same train step at 256 px in a second call). The "
                    "recipe of scripts/demo_ham10000.json (head + 3 fine-tune epochs, balanced sampler) at each image "
                    "size, seeds 0 and 1",
    "ham10000_gpu_12ep": "SIZES=224 EPOCHS=12 bash bench/ham_gpu.sh, seed 0 in one call and seed 1 in a second one "
                         "after early stopping stopped counting the one-cycle warm-up: in the first call seed 1 stopped "
                         "after fine-tune epoch 3, keeping the head's weights (validation balanced accuracy 0.603), and "
                         "seed 0 stopped after epoch 11, where the change does not reach; "
                         "bench/out/ham_gpu/returned_12ep_s0/ham_gpu_device_as_run.json keeps both). The recipe of "
                         "scripts/demo_ham10000.json with 12 fine-tune epochs instead of 3 (patience 3) at 224 px, a "
                         "training budget the 2-core CPU cannot afford, seeds 0 and 1",
}


def score(returned: list[Path], case: str = "ham10000_gpu") -> None:
    """Here, on the CPU: the runs of one or more GPU calls together; the choice on their validation figures; the
    chosen size's runs on the test split (once), and on validation again (the same weights on another device and in
    float32: a check of what the choice was made on)."""
    docs = [json.loads((d / "ham_gpu_device.json").read_text()) for d in returned]
    runs = [{**r, "dir": str(d)} for d, doc in zip(returned, docs, strict=True) for r in doc["runs"]]
    if any(doc["machine"] != docs[0]["machine"] for doc in docs):
        raise SystemExit("the runs came from different machines: score each machine's runs apart")
    options = table(runs)
    chosen = choose(options)
    if chosen is None:
        raise SystemExit("no image size was run on 2 seeds: nothing to choose from")
    ds = open_dataset("ham10000")
    splits = split_dataset(ds, (0.7, 0.1, 0.2), seed=0)
    tta = chosen["tta"]
    tests, vals = [], []
    for r in runs:
        if r["option"] != chosen["option"]:
            continue
        run_dir = HERE / r["name"] / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        parts = sorted(Path(r["dir"]).glob(f"{r['name']}.tar.*"), key=lambda f: int(f.suffix[1:]))
        if not parts:
            raise SystemExit(f"{r['name']} was chosen but its weights did not come back from the GPU machine")
        with tarfile.open(fileobj=io.BytesIO(b"".join(f.read_bytes() for f in parts))) as tar:
            tar.extractall(run_dir, filter="data")
        run = Run(run_dir)
        ids = run.config.class_ids
        for split, into in (("val", vals), ("test", tests)):
            idx = splits.indices(ds, split)
            y = np.asarray([ids.index(ds[i].label) for i in idx])
            into.append(metrics_of(y, run_logits(run_dir, resized_images(ds, idx, run.config.train.preprocess), tta),
                                   ids))
    headline = {k: [t[k] for t in tests] for k in ("balanced_accuracy", "accuracy", "macro_auc")}
    headline["mel_recall"] = [t["per_class_recall"]["mel"] for t in tests]
    metrics = {
        "options": options,
        "chosen": chosen,
        "val_balanced_accuracy_cpu": spread([v["balanced_accuracy"] for v in vals]),
        **{k: round(float(np.mean(v)), 4) for k, v in headline.items()},  # the mean over the chosen size's seeds
        "spread": {k: spread(v) for k, v in headline.items()},
        "per_class_recall": {c: round(float(np.mean([t["per_class_recall"][c] for t in tests])), 4)
                             for c in tests[0]["per_class_recall"]},
    }
    wall = sum(r["wall_s"] for r in runs)
    print(write_result(
        case, "ham10000", wall, metrics, {}, machine_info=docs[0]["machine"],
        notes="commands: python bench/ham_gpu.py pack (here); python bench/ham_gpu.py train OUT (on the GPU machine "
              "named in `machine`, CARELENS_DATA=bench/out/ham_gpu/carry, bf16 autocast); python bench/ham_gpu.py "
              f"score OUT... --case {case} (here, on the CPU; {NOTES[case]}, split_dataset(ham10000, (0.7, 0.1, 0.2), "
              "seed=0) "
              "(lesion-grouped); the test images never went to the GPU machine. Size and flips chosen on validation "
              "measured there (options); val_balanced_accuracy_cpu: the chosen runs' validation again here, in "
              "float32; test figures for the chosen size alone, mean and min-max over seeds, measured here. wall_s: "
              "the GPU's training time summed over all runs. HAM10000 here is 200x150 px: larger inputs are "
              "upsampled."))


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("pack", "train", "compare", "score"):
        raise SystemExit(__doc__)
    if argv[0] == "pack":
        pack()
    elif argv[0] == "compare":
        compare(argv[1], [Path(a) for a in argv[2:]])
    elif argv[0] == "train":
        opts = dict(zip(argv[2::2], argv[3::2], strict=True))
        train_runs(Path(argv[1]), [int(s) for s in opts.get("--sizes", "224,256").split(",")],
                   [int(s) for s in opts.get("--seeds", "0,1").split(",")], float(opts.get("--budget-s", "1e9")),
                   int(opts["--epochs"]) if "--epochs" in opts else None)
    else:
        args = argv[1:]
        case = args[args.index("--case") + 1] if "--case" in args else "ham10000_gpu"
        if case not in NOTES:
            raise SystemExit(f"--case {case}: one of {', '.join(NOTES)}")
        score([Path(a) for a in args if a not in ("--case", case)], case)


if __name__ == "__main__":
    main(sys.argv[1:])
