"""Distributed training (issue 17), case `train_ddp`: python bench/train_ddp.py [--epochs 3]

`carelens train` on PneumoniaMNIST (28 px, official split, small CNN from scratch, balanced sampler) as one
process and as two processes under torchrun (`--nproc 2`: DistributedDataParallel, gloo on CPU; each process gets
half the cores for its threads). Wall time of the whole command and the final validation and test figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result

from carelens.settings import data_root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    npz = data_root() / "pneumoniamnist" / "pneumoniamnist_reconstructed_official_split_counts.npz"
    tmp = Path(tempfile.mkdtemp())
    cfg = tmp / "cfg.json"
    cfg.write_text(json.dumps({"model": "small_cnn", "pretrained": False, "image_size": 28, "head_epochs": 0,
                               "finetune_epochs": args.epochs, "lr_finetune": 0.003, "batch_size": 64,
                               "augment": "xray", "patience": 0, "imbalance": ["balanced_sampler"]}))
    t0 = time.perf_counter()
    metrics: dict[str, object] = {}
    for n in (1, 2):
        out = tmp / f"p{n}"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "carelens.cli", "train", str(npz), "--config", str(cfg), "--out",
                        str(out), *(["--nproc", str(n)] if n > 1 else [])], check=True, capture_output=True)
        wall = time.perf_counter() - t
        m = json.loads((out / "metrics.json").read_text())
        metrics[f"wall_s_{n}p"] = round(wall, 1)
        for split in ("val", "test"):
            for k in ("balanced_accuracy", "macro_auc"):
                metrics[f"{split}_{k}_{n}p"] = round(m[split][k], 4)
        print(n, {k: v for k, v in metrics.items() if k.endswith(f"_{n}p")}, flush=True)
    metrics["max_abs_metric_diff"] = max(abs(float(metrics[f"{s}_{k}_1p"]) - float(metrics[f"{s}_{k}_2p"]))  # type: ignore[arg-type]
                                         for s in ("val", "test") for k in ("balanced_accuracy", "macro_auc"))
    print(write_result("train_ddp", "pneumoniamnist", time.perf_counter() - t0, metrics, {},
                       baseline={"name": "1 process, same run", "metrics": {k: v for k, v in metrics.items()
                                                                           if k.endswith("_1p")}},
                       notes=f"command: python bench/train_ddp.py --epochs {args.epochs}; 28 px, small CNN from "
                             "scratch, balanced sampler, batch 64 (2 x 32 with two processes), official split. On "
                             "2 cores one process already uses both (intra-op threads), so two processes cannot be "
                             "faster here: the case shows the distributed path trains to the same figures; the "
                             "speed-up needs more cores or machines."))


if __name__ == "__main__":
    main()
