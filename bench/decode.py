"""Case `decode_large`: phone-photo uploads, a JPEG decoded at a reduced scale against decoded whole.

Usage: python bench/decode.py   (after `make demo`, whose bundle it runs: bench/out/demo/models/derma)

The data sets here hold small images (HAM10000 at 200x150), so the service's benchmarks never meet what a phone sends:
a 12-megapixel JPEG. This case makes such files from HAM10000 images (upscaled to 4032x3024 with Lanczos, sensor-like
noise added, saved at JPEG quality 90: synthetic, as no large photograph is at hand offline) and measures, in one run,
`carelens.data.read_image` as it decodes them (DCT scaling to at least DECODE_MIN_SIDE a side) against decoding them
whole (``min_side=None``, what every version before did): the decode and preprocessing time, the engine's time end to
end, the peak memory of a process decoding one, and how much the model's answer moves (the `make demo` bundle).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, machine, write_result

from carelens.bundle import load_bundle
from carelens.data import DECODE_MIN_SIDE, open_dataset, read_image
from carelens.predict import Engine
from carelens.preprocess import preprocess_batch

N_FILES = 24
SIZE = (4032, 3024)  # a 12-megapixel phone camera
ROUNDS = 3
BUNDLE = OUT / "demo" / "models" / "derma"


def make_photos(folder: Path) -> list[Path]:
    """N_FILES HAM10000 images (seeded sample) as 12-megapixel JPEGs, made once, all in one pass (one seeded stream
    draws the sample and every file's noise: the same files on every host)."""
    folder.mkdir(parents=True, exist_ok=True)
    ham = open_dataset("ham10000")
    rng = np.random.default_rng(0)
    chosen = sorted(rng.choice(len(ham), N_FILES, replace=False).tolist())
    out = [folder / f"{ham[i].id}.jpg" for i in chosen]
    if all(p.exists() for p in out):
        return out
    for i, p in zip(chosen, out, strict=True):
        big = np.asarray(Image.open(ham[i].path).convert("RGB").resize(SIZE, Image.Resampling.LANCZOS), np.int16)
        noisy = np.clip(big + rng.integers(-6, 7, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(p, quality=90)
    return out


def _full(p: Path) -> np.ndarray:
    return read_image(p, min_side=None)


def _peak_rss_mb(path: Path, whole: bool) -> float:
    """The peak RSS of a fresh process decoding and resizing ``path`` once, above its RSS before (the peak reset after
    the imports through /proc/self/clear_refs, so that the imports' own peak does not hide it)."""
    code = textwrap.dedent(f"""
        from pathlib import Path
        from carelens.data import read_image
        from carelens.preprocess import PreprocessConfig, resize_image
        def kb(key):
            line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
            return int(line.split()[1])
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
        before = kb("VmRSS:")
        img = read_image({str(path)!r}{", min_side=None" if whole else ""})
        resize_image(img, PreprocessConfig())
        print((kb("VmHWM:") - before) / 1024)
    """)
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    if not (BUNDLE / "bundle.json").exists():
        raise SystemExit(f"no bundle at {BUNDLE}: run `make demo` first")
    t0 = time.perf_counter()
    files = make_photos(OUT / "decode_large" / "photos")
    bundle = load_bundle(BUNDLE)
    engine = Engine(bundle, batch_size=1)
    pre = bundle.preprocess
    loads = {"reduced": read_image, "whole": _full}
    prep_ms: dict[str, list[float]] = {k: [] for k in loads}
    e2e_ms: dict[str, list[float]] = {k: [] for k in loads}
    for _ in range(ROUNDS):  # interleaved, so that the host's slow spells hit both alike
        for key, load in loads.items():
            for p in files:
                t = time.perf_counter()
                preprocess_batch([load(p)], pre)
                prep_ms[key].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                list(engine.predict_items([(p.name, p)], load))
                e2e_ms[key].append((time.perf_counter() - t) * 1000)
    # what the model sees and says
    x = {k: preprocess_batch([load(p) for p in files], pre) for k, load in loads.items()}
    res = {k: list(engine.predict_items([(p.name, p) for p in files], load)) for k, load in loads.items()}
    a_red = [r.assessment for r in res["reduced"]]
    a_full = [r.assessment for r in res["whole"]]
    assert all(a_red) and all(a_full)
    prob_diff = max(abs(a.probabilities[c] - b.probabilities[c]) for a, b in zip(a_red, a_full, strict=True)
                    for c in a.probabilities)
    # input difference in grey levels: (x - offset) / scale of the normalisation, back on the 0-255 scale
    std = np.asarray(pre.std, np.float32)[None, :, None, None]
    grey = np.abs(x["reduced"] - x["whole"]) * std * 255
    decoded = read_image(files[0]).shape
    rss = {k: statistics.median(_peak_rss_mb(files[0], k == "whole") for _ in range(3)) for k in loads}
    med = {k: {"prep": statistics.median(prep_ms[k]), "e2e": statistics.median(e2e_ms[k])} for k in loads}
    metrics = {
        "latency_p50_ms": round(med["reduced"]["e2e"], 1), "latency_p50_ms_whole": round(med["whole"]["e2e"], 1),
        "speedup_e2e": round(med["whole"]["e2e"] / med["reduced"]["e2e"], 2),
        "decode_preprocess_p50_ms": round(med["reduced"]["prep"], 1),
        "decode_preprocess_p50_ms_whole": round(med["whole"]["prep"], 1),
        "peak_rss_mb": round(rss["reduced"], 1), "peak_rss_mb_whole": round(rss["whole"], 1),
        "decoded_size": [decoded[1], decoded[0]], "source_size": list(SIZE),
        "input_max_abs_diff_grey_levels": round(float(grey.max()), 2),
        "input_mean_abs_diff_grey_levels": round(float(grey.mean()), 3),
        "max_probability_diff": round(float(prob_diff), 4),
        "top1_agreement": float(np.mean([a.top[0].id == b.top[0].id for a, b in zip(a_red, a_full, strict=True)])),
        "triage_agreement": float(np.mean([a.triage.level == b.triage.level for a, b in zip(a_red, a_full, strict=True)])),
        "files": len(files),
    }
    path = write_result(
        "decode_large", "ham10000", time.perf_counter() - t0, metrics, {},
        baseline={"name": "the same files decoded whole (read_image(min_side=None), every version before)",
                  "metrics": {"latency_p50_ms": metrics["latency_p50_ms_whole"],
                              "peak_rss_mb": metrics["peak_rss_mb_whole"]}},
        notes=f"command: python bench/decode.py; {len(files)} HAM10000 images (seeded sample) upscaled to "
              f"{SIZE[0]}x{SIZE[1]} (Lanczos), noise of +-6 grey levels added, JPEG quality 90: synthetic phone photos "
              f"(no large photograph is at hand offline). reduced: read_image as shipped (libjpeg DCT scaling to at "
              f"least DECODE_MIN_SIDE={DECODE_MIN_SIDE} px a side: here 1/2); whole: min_side=None. latency: "
              f"Engine.predict_items one file at a time (batch 1), the `make demo` bundle ({bundle.name}, fp32, "
              f"{pre.image_size} px); decode_preprocess: read_image + preprocess_batch; {ROUNDS} interleaved rounds, "
              "medians. peak_rss_mb: a fresh process decoding and resizing one file, its peak RSS above its RSS "
              "before (median of 3). input_*: the model input of the two decodes, in grey levels; probability and "
              "agreement: the bundle's assessments of the two decodes. CPU: " + machine()["cpu"])
    print(path, json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
