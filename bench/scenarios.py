"""The owner scenarios, end to end (issue 14). Usage: python bench/scenarios.py

Runs carelens/scenarios/owner.yaml in-process through /v1/chat with the benchmark bundles (`derma224` from
bench/out/inference, `skin_conditions` from bench/out/multilabel_synth), the human symptom bundle
(bench/out/symptoms_bundle) and the scripted language model; the report goes to bench/out/scenarios/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import json

from _common import OUT, write_result

BUNDLES = {"derma224": OUT / "inference" / "bundle", "skin_conditions": OUT / "multilabel_synth" / "bundle"}


def main() -> None:
    models = OUT / "scenarios" / "models"
    shutil.rmtree(models, ignore_errors=True)
    for name, src in BUNDLES.items():
        if not (src / "bundle.json").is_file():
            raise SystemExit(f"{src} is missing: run the benchmark that makes it first")
        shutil.copytree(src, models / name)
    t0 = time.perf_counter()
    report = OUT / "scenarios" / "report"
    subprocess.run([sys.executable, "-m", "carelens.cli", "scenarios", "run", "owner", "--models", str(models),
                    "--symptoms", str(OUT / "symptoms_bundle"), "--out", str(report)], check=True)
    wall = time.perf_counter() - t0
    results = json.loads((report / "results.json").read_text())
    passed = sum(r["passed"] for r in results)
    failed = [r["name"] for r in results if not r["passed"]]
    print(write_result("scenarios", "owner scenarios (HAM10000 photos, generated skin images, symptom text)", wall,
                       {"passed": passed, "total": len(results), "failed": failed, "wall_s": round(wall, 1)},
                       {"passed": len(results)}, split="scenarios",
                       notes="no pet image set ships, so the plan's pet cases run on the human skin models; the "
                             f"report is {report.relative_to(OUT.parent)}/report.html"))


if __name__ == "__main__":
    main()
