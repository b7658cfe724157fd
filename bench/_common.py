"""Result files as ../shared/BENCH.md says: bench/results/<case>.json, bulky outputs in bench/out/<case>/."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from carelens.preprocess import PreprocessConfig, resize_image

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
OUT = BENCH / "out"


def run_of(case: str) -> Path:
    """The training run a case's later benchmarks (calibration, report, facts fusion) read: for ham10000 the first
    seed of the candidate bench/ham_recipe.py chose on validation (its result names the runs; for the ensemble of two
    seeds, its first member), else bench/out/<case>/run."""
    if case != "ham10000":
        return OUT / case / "run"
    return BENCH.parent / _chosen_ham10000()["runs"][0]


def bundle_of(case: str) -> Path:
    """The bundle a case's showcase report reads: for ham10000, when the chosen candidate is measured in another case
    (the ensemble of two seeds, in ham10000_ensemble), that case's shipped bundle of the first pair; else the
    training benchmark's (bench/out/<case>/bundle, made by bench/calibration.py)."""
    if case == "ham10000" and _chosen_ham10000().get("measured_in") == "ham10000_ensemble":
        return OUT / "ham10000_ensemble" / "ensemble_0"
    return OUT / case / "bundle"


def _chosen_ham10000() -> dict[str, Any]:
    """The candidate bench/ham_recipe.py chose on validation, as its result records it."""
    m = json.loads((RESULTS / "ham10000.json").read_text())["metrics"]
    return m["candidates"][m["chosen"]]  # type: ignore[no-any-return]


LOWER_IS_BETTER = {"ece", "mce", "critical_miss_rate", "over_triage_rate", "mean_set_size", "errors", "brier", "nll", "rss_growth",
                   "model_vs_bare_ratio", "fnr_gap", "kept_over_true", "severity_mae", "hamming_loss",
                   "hr_abs_err_bpm", "hr_abs_err_bpm_max", "coverage_gap", "max_abs_logit_diff_vs_recipe", "critical_miss_rate_fused", "critical_miss_rate_image",
                   "balanced_accuracy_loss", "val_balanced_accuracy_loss"}


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric == "wall_s" or metric.endswith(("_ms", "_mb", "_diff"))


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
                 baseline: dict[str, Any] | None = None, split: str = "test", notes: str = "",
                 machine_info: dict[str, Any] | None = None) -> Path:
    """``machine_info``: the machine that did the measured work, where that is not this one (a GPU run)."""
    met = judge(metrics, targets)
    doc = {
        "case": case, "dataset": dataset, "split": split,
        "command": "python " + " ".join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info or machine(), "wall_s": round(wall_s, 1), "peak_rss_mb": peak_rss_mb(),
        "metrics": metrics, "baseline": baseline or {}, "targets": targets, "met": met, "notes": notes,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{case}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def resized_images(ds: Any, indices: list[int], pre: PreprocessConfig) -> np.ndarray:
    """The images at ``indices`` of a dataset, decoded and resized as the trainer holds them (N, S, S, 3) uint8."""
    return np.stack([resize_image(img, pre) for _, img in ds.iter_images(indices)])


def rss_mb(pid: int, children: bool = False) -> float:
    """Resident memory of a process (with ``children``: plus its child processes, e.g. service workers), from /proc."""
    def one(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    total = one(pid)
    if children:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids = (task / "children").read_text().split() if (task / "children").exists() else []
            total += sum(rss_mb(int(k), children=True) for k in kids)
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def until_ready(cmd: list[str], env: dict[str, str], port: int, wait_s: float = 120.0,
                log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (something that ends by serving carelens on ``port``) with ``env`` added; yield once /ready says
    so. Stopped with SIGTERM (a graceful shutdown) on leaving. ``log``: where its output goes (else nowhere)."""
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/ready"
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd)} exited with code {proc.returncode}" + (f" (see {log})" if log else ""))
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(cmd)} was not serving after {wait_s:.0f} s")
            time.sleep(0.5)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        if log is not None:
            out.close()  # type: ignore[union-attr]


@contextmanager
def serving(env: dict[str, str], workers: int = 1) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`carelens serve [--workers N]` on a free loopback port with ``env`` added; (process, base URL) once /ready
    says so. Stopped with SIGTERM (a graceful shutdown) on leaving."""
    port = free_port()
    cmd = [sys.executable, "-m", "carelens.cli", "serve", "--port", str(port), "--workers", str(workers)]
    with until_ready(cmd, env, port) as proc:
        yield proc, f"http://127.0.0.1:{port}"


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Mean recall over the classes present in ``y`` (sklearn's balanced accuracy, in numpy for the bootstrap)."""
    n = np.bincount(y, minlength=k)
    hit = np.bincount(y[pred == y], minlength=k)
    seen = n > 0
    return float((hit[seen] / n[seen]).mean())


def paired_loss(y: np.ndarray, ref: np.ndarray, other: np.ndarray, k: int, draws: int = 2000) -> dict[str, float]:
    """Balanced accuracy of ``ref`` minus that of ``other`` (argmax predictions) on the same images, with a 95%
    paired bootstrap interval (images resampled), and their top-1 agreement."""
    rng = np.random.default_rng(0)
    loss = _balanced_accuracy(y, ref, k) - _balanced_accuracy(y, other, k)
    boots = []
    for _ in range(draws):
        i = rng.integers(0, len(y), len(y))
        boots.append(_balanced_accuracy(y[i], ref[i], k) - _balanced_accuracy(y[i], other[i], k))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"loss": round(loss, 4), "ci_low": round(float(lo), 4), "ci_high": round(float(hi), 4),
            "top1_agreement": round(float((ref == other).mean()), 4)}


def logit_comparison(y: np.ndarray, ref: np.ndarray, other: np.ndarray, k: int) -> dict[str, float]:
    """:func:`paired_loss` of the argmax of ``other`` logits against ``ref``'s, and the root mean square difference of
    the logits themselves."""
    return {**paired_loss(y, ref.argmax(1), other.argmax(1), k),
            "logit_rmse": round(float(np.sqrt(((other - ref) ** 2).mean())), 4)}


def int8_baselines(src: Path, path_of: Callable[[str], Path], ds: Any, splits: Any,
                   pre: PreprocessConfig) -> dict[str, Path]:
    """``src`` quantised as `carelens export --int8` quantises it (the same calibration images of the training split)
    but with other choices, the baselines of the shipped ones, written to ``path_of(name)``: ``all_int8``, every
    convolution in int8 (the export before FLOAT_CONVS), and ``uncorrected``, without the bias correction."""
    from carelens.steps.quantize import FLOAT_CONVS, calibration_indices, quantize_onnx, split_batches

    batches = list(split_batches(ds, calibration_indices(splits.indices(ds, "train")), pre, batch=16))
    out = {}
    for name, float_convs, corrected in (("all_int8", 0, True), ("uncorrected", FLOAT_CONVS, False)):
        out[name] = path_of(name)
        quantize_onnx(src, out[name], batches, float_convs=float_convs, bias_correction=corrected)
    return out
