"""Batch scoring on Ray (issue 17), case `batch_ray`: python bench/batch_ray.py [--images 2000]

The 224px EfficientNet-Lite0 bundle of bench/inference.py scores the same HAM10000 images three ways: the
single-process path (`Engine.predict_paths`, as `carelens predict` runs it, ONNX Runtime on all cores), and Ray
Data on a local instance with 1 and 2 scoring actors (one ONNX Runtime thread each; `carelens predict --ray local
--workers N`). Images/s from the first row to the last (start-up of Ray and of the actors counted), and whether
the three outputs agree (same inputs in the same order, same top class, set and triage; probabilities within 1e-5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, write_result

from carelens.bundle import load_bundle
from carelens.data import open_dataset
from carelens.predict import Engine, write_results
from carelens.predict.distributed import score_with_ray


def _decisions(path: Path) -> list[tuple[str, str, list[str], str, list[float]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["input"], r["assessment"]["top"][0]["id"], r["assessment"]["prediction_set"],
             r["assessment"]["triage"]["level"], [t["probability"] for t in r["assessment"]["top"]]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    args = ap.parse_args()
    bundle = OUT / "inference" / "bundle"
    if not (bundle / "bundle.json").is_file():
        raise SystemExit("run bench/inference.py first (it builds the 224px bundle)")
    ds = open_dataset("ham10000")
    idx = np.random.default_rng(0).choice(len(ds), args.images, replace=False)
    tmp = Path(tempfile.mkdtemp())
    folder = tmp / "images"
    folder.mkdir()
    for i in idx:
        src = Path(str(ds[int(i)].path))
        shutil.copy(src, folder / src.name)
    paths = sorted(folder.iterdir())
    t0 = time.perf_counter()
    outs: dict[str, Path] = {}
    rates: dict[str, float] = {}
    engine = Engine(load_bundle(bundle), batch_size=8)
    outs["single"] = tmp / "single.jsonl"
    t = time.perf_counter()
    with outs["single"].open("w") as f:
        for _ in write_results(engine.predict_paths(paths), f):
            pass
    rates["single"] = len(paths) / (time.perf_counter() - t)
    for w in (1, 2):
        name = f"ray_{w}w"
        outs[name] = tmp / f"{name}.jsonl"
        t = time.perf_counter()
        s = score_with_ray(bundle, [str(folder)], outs[name], workers=w, batch_size=8)
        rates[name] = s.scored / (time.perf_counter() - t)
        print(name, round(rates[name], 1), "img/s", flush=True)
    ref = _decisions(outs["single"])
    agree, max_diff = True, 0.0
    for name in ("ray_1w", "ray_2w"):
        got = _decisions(outs[name])
        agree &= [r[:4] for r in got] == [r[:4] for r in ref]
        max_diff = max(max_diff, max(abs(a - b) for x, y in zip(ref, got, strict=True) for a, b in zip(x[4], y[4], strict=True)))
    wall = time.perf_counter() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    metrics = {"images": len(paths), "images_per_s_single": round(rates["single"], 1),
               "images_per_s_ray_1w": round(rates["ray_1w"], 1), "images_per_s_ray_2w": round(rates["ray_2w"], 1),
               "identical_decisions": agree, "max_probability_diff": max_diff}
    print(write_result("batch_ray", "ham10000", wall, metrics, {},
                       baseline={"name": "single process (Engine.predict_paths), same run",
                                 "metrics": {"images_per_s": metrics["images_per_s_single"]}},
                       split="random sample",
                       notes=f"command: python bench/batch_ray.py --images {args.images}; 224px EfficientNet-Lite0 fp32 "
                             "bundle; JPEG decode + resize + model + decision per image, rows written as JSON lines; "
                             "Ray: local instance, start-up counted, one ONNX Runtime thread per actor; the single "
                             "process uses ONNX Runtime on both cores. 2 cores: Ray can only spread the work, not "
                             "add cores."))


if __name__ == "__main__":
    main()
