"""The `demo` case (issue 16, item 5): what a newcomer's `make demo` reaches, and how fast, once the virtual
environment exists. Runs scripts/demo.sh as `make demo` does (into bench/out/demo/, on a free port), times it from
the start to the moment the served page answers /ready, stops the server, and reports the test figures the demo
script recorded (bench/out/demo/demo.json, the same file `make demo` writes into demo/).

Usage: python bench/demo.py     (about 10 minutes on 2 cores; nothing else should run meanwhile)
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, free_port, until_ready, write_result

ROOT = Path(__file__).resolve().parents[1]
HERE = OUT / "demo"


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    HERE.mkdir(parents=True)
    port = free_port()
    env = {"CARELENS_DEMO_OUT": str(HERE), "CARELENS_DEMO_PORT": str(port),
           "CARELENS_DATABASE_URL": f"sqlite:///{HERE / 'audit_log.db'}"}
    t0 = time.perf_counter()
    with until_ready(["bash", str(ROOT / "scripts" / "demo.sh")], env, port, wait_s=3600, log=OUT / "demo.log"):
        wall = time.perf_counter() - t0
    rec = json.loads((HERE / "demo.json").read_text())
    metrics = {"wall_s": round(wall, 1), "balanced_accuracy": round(rec["balanced_accuracy"], 4),
               "accuracy": round(rec["accuracy"], 4), "macro_auc": rec["macro_auc"],
               "melanoma_recall": round(rec["per_class_recall"]["mel"], 4), "per_class_recall": rec["per_class_recall"],
               "critical_miss_rate": rec["critical_miss_rate"], "over_triage_rate": rec["over_triage_rate"],
               "phases_s": rec["phases_s"]}
    if "with_facts" in rec:  # the same bundle's answers given the facts HAM10000 carries (age, sex, lesion site)
        metrics["with_facts"] = rec["with_facts"]
    print(write_result(
        "demo", "ham10000", wall, metrics, {"wall_s": 720, "balanced_accuracy": 0.65, "melanoma_recall": 0.60},
        notes="command: python bench/demo.py (scripts/demo.sh as `make demo` runs it, the virtual environment already "
              "set up): wall_s from its start to the served page answering /ready; figures on the test split of the "
              "demo's own lesion-grouped split, from its evaluation report (recorded by the demo script in "
              "demo.json). The demo recipe: scripts/demo_ham10000.json (128 px, head + 3 fine-tune epochs). with_facts: "
              "the same bundle given the clinical facts of each test image (fused as carelens calibrate fitted them)."))


if __name__ == "__main__":
    main()
