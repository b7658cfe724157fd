"""Load benchmark of the service (issue 8), case `load`: python bench/load.py [--clients 32] [--seconds 30];
case `load_int8` (issue 16): python bench/load.py --int8 (the int8 bundle of bench/inference.py inference_int8);
case `load_workers` (issue 17): python bench/load.py --workers 1,2 (the same bundle served by 1 then 2 worker
processes, alternated over --rounds, medians reported); case `load_photos`: python bench/load.py --photos
--clients 8 --baseline-src DIR (the 12-megapixel JPEGs of bench/decode.py instead of HAM10000's 200x150 ones).

Starts `carelens serve` on loopback with the 224px bundle of bench/inference.py, then N concurrent
clients post HAM10000 images for a bounded time. Reports throughput, p50/p99 latency, errors and the
server's resident memory before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, rss_mb, serving, write_result

from carelens.data import open_dataset


async def _client(url: str, images: list[bytes], stop: float, lat: list[float], errors: list[str], k: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        i = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                r = await c.post("/v1/models/derma224/predict", files={"file": ("x.jpg", images[i % len(images)], "image/jpeg")})
                if r.status_code != 200:
                    errors.append(str(r.status_code))
                else:
                    lat.append((time.perf_counter() - t) * 1000)
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            i += 1


PHOTOS = OUT / "decode_large" / "photos"  # made by bench/decode.py


def _measure(bundle: Path, clients: int, seconds: float, workers: int = 1,
             settings: dict[str, str] | None = None, photos: bool = False) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(bundle, tmp / "models" / "derma224")
    env = {"CARELENS_MODELS_DIR": str(tmp / "models"), "CARELENS_DATABASE_URL": f"sqlite:///{tmp}/a.db",
           "CARELENS_RATE_LIMIT_PER_S": "0",  # capacity, not the per-key limiter, is measured
           "CARELENS_MAX_IN_FLIGHT": str(4 * clients),  # closed loop: every client always has one in flight
           **(settings or {})}
    with serving(env, workers) as (proc, url):
        if photos:
            images = [p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))]
        else:
            ds = open_dataset("ham10000")
            idx = np.random.default_rng(0).choice(len(ds), 200, replace=False)
            images = [Path(ds[int(i)].path).read_bytes() for i in idx]  # type: ignore[arg-type]
        # warm up at the measured concurrency (ONNX Runtime's arena and the allocator reach their working
        # size for full micro-batches), then measure: growth after that is what would grow without bound
        lat: list[float] = []
        errors: list[str] = []
        asyncio.run(_gather(url, images, 5.0, lat, errors, clients))
        rss_before = rss_mb(proc.pid, children=workers > 1)
        lat, errors = [], []
        t0 = time.perf_counter()
        asyncio.run(_gather(url, images, seconds, lat, errors, clients))
        wall = time.perf_counter() - t0
        rss_after = rss_mb(proc.pid, children=workers > 1)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "requests_per_s": round(len(lat) / wall, 1), "latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 1), "errors": len(errors),
        "requests": len(lat), "clients": clients, "server_rss_before_mb": round(rss_before, 1),
        "server_rss_after_mb": round(rss_after, 1), "rss_growth": round(rss_after / rss_before - 1, 4),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--int8", action="store_true", help="serve the int8 bundle (case load_int8)")
    ap.add_argument("--workers", default="", help="compare worker counts, e.g. 1,2 (case load_workers)")
    ap.add_argument("--rounds", type=int, default=2, help="alternations with the baseline (or of the worker counts)")
    ap.add_argument("--photos", action="store_true", help="post bench/decode.py's 12 MP JPEGs (case load_photos)")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="a checkout of an earlier carelens: its server (default settings) is the baseline, instead of "
                         "this one with one micro-batch at a time")
    args = ap.parse_args()
    bundle = OUT / "inference" / ("bundle_int8" if args.int8 else "bundle")
    if not (bundle / "bundle.json").is_file():
        raise SystemExit("run bench/inference.py first (it builds the 224px bundle; `inference_int8` the int8 one)")
    if args.workers:
        return _compare_workers(bundle, args)
    if args.photos and not any(PHOTOS.glob("*.jpg")):
        raise SystemExit(f"no photos in {PHOTOS}: run python bench/decode.py first")
    t0 = time.perf_counter()
    runs: dict[str, list[dict[str, float]]] = {"default": [], "baseline": []}
    if args.baseline_src is not None:
        commit = subprocess.run(["git", "-C", str(args.baseline_src), "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        baseline, base_name = ({"PYTHONPATH": str(args.baseline_src.resolve() / "src")},
                               f"the service at {commit} (default settings), same run")
    else:
        baseline, base_name = BASELINE, ("one micro-batch at a time on both cores (CARELENS_BATCHES_IN_FLIGHT=1, "
                                         "CARELENS_THREADS=2), same run")
    for _ in range(args.rounds):  # alternated with the baseline, so that the host's drift falls on both alike
        runs["default"].append(_measure(bundle, args.clients, args.seconds, photos=args.photos))
        runs["baseline"].append(_measure(bundle, args.clients, args.seconds, settings=baseline, photos=args.photos))
        print({k: v[-1] for k, v in runs.items()}, flush=True)
    wall = time.perf_counter() - t0
    metrics = _median(runs["default"]) | {"rounds": runs["default"]}
    base = _median(runs["baseline"])
    case, targets = ("load_int8", {"requests_per_s": 200, "latency_p99_ms": 250, "errors": 0, "rss_growth": 0.10}) \
        if args.int8 else ("load", {"requests_per_s": 100, "latency_p99_ms": 250, "errors": 0, "rss_growth": 0.10})
    if args.photos:
        return _write_photos(args, wall, metrics, base, base_name)
    print(write_result(case, "ham10000", wall, metrics, targets,
                       baseline={"name": base_name, "metrics": base},
                       notes=f"command: python bench/load.py{' --int8' if args.int8 else ''} --rounds {args.rounds}"
                             + (" --baseline-src DIR (a git worktree of the baseline's commit)" if args.baseline_src
                                else "") + "; "
                             f"medians over {args.rounds} rounds of {args.seconds:.0f} s, alternated with the "
                             "baseline; defaults: 2 micro-batches in flight, 1 ONNX Runtime thread each; "
                             f"224px EfficientNet-Lite0 bundle ({'int8' if args.int8 else 'fp32'}); clients and server share the same 2 cores; every "
                             "request is written to the SQLite audit log before its response; 5 s warm-up at the "
                             "same concurrency before RSS 'before'. With 32 clients always waiting, p99 <= 250 ms "
                             "needs > 128 requests/s (Little's law). Where the server's CPU goes (int8, per request, "
                             "from /proc per thread at 180 requests/s): 4.9 ms in the two batch threads (ONNX Runtime "
                             "alone is 3.3 ms per image on one thread), 1.6 ms in the event loop, 1.2 ms in the "
                             "decode and audit-log threads; the clients take 1.5 ms. Runs on this host vary by +-6%"
                             + ("; the steps, each against the one before in alternated rounds: two micro-batches "
                                "in flight 163 -> 189 requests/s, p99 294 -> 260 ms (5 rounds of 30 s); the request-id "
                                "middleware as pure ASGI instead of @app.middleware('http') 184 -> 205, p99 272 -> 248 "
                                "(4 rounds of 20 s, the previous commit's server through PYTHONPATH); the dependencies (key check, "
                                "services) as async functions instead of one threadpool hop each, the audit rows "
                                "group-committed (one transaction and one thread hop for the rows that finish while "
                                "a write is in progress) and the start-up heap frozen out of the garbage collector "
                                "(full collections had paused every request up to 97 ms, 590 ms in 25 s) 170 -> 213, "
                                "p99 330 -> 228 (4 rounds of 30 s against 9b956cf, this run)." if args.int8
                                else "; the dependencies as async functions, the audit rows group-committed and the "
                                     "start-up heap frozen out of the garbage collector (see load_int8): 118 -> 132, "
                                     "p99 440 -> 336 (4 rounds of 30 s against 9b956cf, this run, on a host slower "
                                     "than in the run before, which measured 138 -> 169 against 65cb40b).")))


BASELINE = {"CARELENS_BATCHES_IN_FLIGHT": "1", "CARELENS_THREADS": "2"}


def _write_photos(args: argparse.Namespace, wall: float, metrics: dict[str, object], base: dict[str, float],
                  base_name: str) -> None:
    n = len(list(PHOTOS.glob("*.jpg")))
    print(write_result("load_photos", "ham10000", wall, metrics, {"errors": 0},
                       baseline={"name": base_name, "metrics": base},
                       notes=f"command: python bench/load.py --photos --clients {args.clients} --rounds {args.rounds}"
                             + (" --baseline-src DIR (a git worktree of the baseline's commit)" if args.baseline_src
                                else "") + f"; the {n} synthetic 12-megapixel JPEGs of bench/decode.py (4032x3024, "
                             f"1.5-1.9 MB) posted by {args.clients} clients; medians over {args.rounds} rounds of "
                             f"{args.seconds:.0f} s, alternated with the baseline; 224px EfficientNet-Lite0 bundle "
                             f"({'int8' if args.int8 else 'fp32'}); clients and server share the same 2 cores; two "
                             "decodes at a time (CARELENS_DECODE_CONCURRENCY); a JPEG this large is decoded at half "
                             "its size since DECODE_MIN_SIDE (the baseline decodes it whole)."))


def _median(rs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds; errors summed."""
    out = {k: float(np.median([r[k] for r in rs])) for k in rs[0] if k not in ("errors", "wall_s")}
    return out | {"errors": int(sum(r["errors"] for r in rs))}


def _compare_workers(bundle: Path, args: argparse.Namespace) -> None:
    counts = [int(w) for w in args.workers.split(",")]
    t0 = time.perf_counter()
    runs: dict[int, list[dict[str, float]]] = {w: [] for w in counts}
    for r in range(args.rounds):  # alternated, so that the host's drift falls on every worker count alike
        for w in counts:
            runs[w].append(_measure(bundle, args.clients, args.seconds, workers=w))
            print(f"round {r} workers {w}: {runs[w][-1]}", flush=True)
    metrics: dict[str, object] = {}
    for w, rs in runs.items():
        for k in ("requests_per_s", "latency_p50_ms", "latency_p99_ms", "server_rss_after_mb"):
            metrics[f"{k}_{w}w"] = float(np.median([x[k] for x in rs]))
        metrics[f"errors_{w}w"] = int(sum(x["errors"] for x in rs))
        metrics[f"runs_{w}w"] = rs
    wall = time.perf_counter() - t0
    name = "int8" if args.int8 else "fp32"
    print(write_result("load_workers", "ham10000", wall, metrics, {"errors_2w": 0},
                       baseline={"name": "1 worker, same run", "metrics": {k: v for k, v in metrics.items()
                                                                          if k.endswith("_1w")}},
                       notes=f"command: python bench/load.py --workers {args.workers} --rounds {args.rounds}"
                             f"{' --int8' if args.int8 else ''}; 224px EfficientNet-Lite0 bundle ({name}), "
                             f"{args.clients} clients, {args.seconds:.0f} s per run after a 5 s warm-up; worker counts "
                             "alternated, medians over rounds. Each worker gets cores/workers ONNX Runtime threads "
                             "(`serve --workers` sets it); clients and server share the same 2 cores; one SQLite "
                             "audit log (WAL) for all workers. RSS: the parent and its workers together."))


async def _gather(url: str, images: list[bytes], seconds: float, lat: list[float], errors: list[str], n: int) -> None:
    stop = time.perf_counter() + seconds
    await asyncio.gather(*(_client(url, images, stop, lat, errors, k) for k in range(n)))


if __name__ == "__main__":
    main()
