"""Result files as ../shared/BENCH.md says: bench/results/<case>.json, bulky outputs in bench/out/<case>/."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
OUT = BENCH / "out"


LOWER_IS_BETTER = {"ece", "mce", "critical_miss_rate", "mean_set_size", "errors", "brier", "nll", "rss_growth",
                   "model_vs_bare_ratio"}


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric == "wall_s" or metric.endswith(("_ms", "_mb"))


def judge(metrics: dict[str, Any], targets: dict[str, float]) -> dict[str, bool]:
    """Which targets were met (lower-is-better metrics: times, memory, error rates)."""
    return {k: bool(metrics[k] <= t) if lower_is_better(k) else bool(metrics[k] >= t)
            for k, t in targets.items() if metrics.get(k) is not None}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": None}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_result(case: str, dataset: str, wall_s: float, metrics: dict[str, Any], targets: dict[str, float],
                 baseline: dict[str, Any] | None = None, split: str = "test", notes: str = "") -> Path:
    met = judge(metrics, targets)
    doc = {
        "case": case, "dataset": dataset, "split": split,
        "command": "python " + " ".join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(), "wall_s": round(wall_s, 1), "peak_rss_mb": peak_rss_mb(),
        "metrics": metrics, "baseline": baseline or {}, "targets": targets, "met": met, "notes": notes,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{case}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path
