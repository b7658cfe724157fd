"""Inference passes inside training (`carelens train`): eager PyTorch against ONNX Runtime. Case `train_inference`.

Training runs the model over whole splits without learning: the head phase's frozen features, validation after
every fine-tune epoch, and the best model's outputs on every split for the calibrate step. On the CPU those passes
export the current weights to ONNX and run them in ONNX Runtime (`predict_logits(engine="auto")`). Measured here
on real HAM10000 images with the ImageNet EfficientNet-Lite0 (a fresh head), both engines in the same process,
alternating rounds: images per second, the export's cost, and how far apart the two engines' outputs are.

Usage: python bench/train_inference.py [--size 128] [--images 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import resized_images, write_result

from carelens.data import open_dataset
from carelens.models import build_classifier
from carelens.preprocess import PreprocessConfig
from carelens.train import configure_runtime, predict_logits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    t0 = time.perf_counter()
    configure_runtime()
    ham = open_dataset("ham10000")
    pre = PreprocessConfig(image_size=a.size)
    images = resized_images(ham, list(range(a.images)), pre)
    model = build_classifier("efficientnet_lite0", 7, a.size)
    rate: dict[str, list[float]] = {"torch": [], "onnx": []}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for _ in range(a.rounds):
        for engine in ("torch", "onnx"):
            t = time.perf_counter()
            lo, fe = predict_logits(model, images, pre, with_features=True, engine=engine)
            rate[engine].append(len(images) / (time.perf_counter() - t))
            assert fe is not None
            out[engine] = (lo, fe)
    small = images[:2]
    t = time.perf_counter()
    predict_logits(model, small, pre, engine="onnx")
    export_s = time.perf_counter() - t  # the export and the session, for 2 images
    (lt, ft), (lo, fo) = out["torch"], out["onnx"]
    torch_ips, onnx_ips = statistics.median(rate["torch"]), statistics.median(rate["onnx"])
    metrics = {
        "throughput_img_s": round(onnx_ips, 1), "throughput_img_s_torch": round(torch_ips, 1),
        "speedup_vs_torch": round(onnx_ips / torch_ips, 2), "export_and_session_s": round(export_s, 2),
        "max_abs_logit_diff": float(np.abs(lt - lo).max()), "max_abs_feature_diff": float(np.abs(ft - fo).max()),
        "top1_agreement": float((lt.argmax(1) == lo.argmax(1)).mean()),
        "rounds_img_s": {k: [round(v, 1) for v in vs] for k, vs in rate.items()},
        "image_size": a.size, "images": len(images), "batch": 64,
    }
    print(metrics)
    write_result("train_inference", "ham10000", time.perf_counter() - t0, metrics,
                 {"speedup_vs_torch": 2.0, "max_abs_logit_diff": 1e-3}, split="train",
                 baseline={"name": "eager PyTorch (channels_last, the trainer's CPU settings)",
                           "metrics": {"throughput_img_s": round(torch_ips, 1)}},
                 notes="Median of alternating rounds, both engines in one process. The threshold ONNX_MIN_IMAGES "
                       "(256) sits where the export's cost is repaid.")


if __name__ == "__main__":
    main()
