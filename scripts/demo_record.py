"""What `make demo` reached and how long each phase took: OUT/demo.json, from OUT/phases.tsv (written by
scripts/demo.sh) and the evaluation report's test figures. Usage: python scripts/demo_record.py OUT"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def record(out: Path) -> dict[str, object]:
    phases = [line.split("\t") for line in (out / "phases.tsv").read_text().splitlines() if line.strip()]
    seconds = {name: round(float(end) - float(start), 1) for name, start, end in phases}
    report = json.loads((out / "report" / "metrics.json").read_text())
    doc: dict[str, object] = {
        "wall_s": round(float(phases[-1][2]) - float(phases[0][1]), 1),  # the first phase's start to the server's
        "phases_s": seconds,
        "model": report.get("model"),
        "split": report.get("split"),
        "balanced_accuracy": report["balanced_accuracy"],
        "accuracy": report["accuracy"],
        "macro_auc": report.get("macro_auc"),
        "per_class_recall": report["per_class_recall"],
        "critical_miss_rate": report.get("critical_miss_rate"),
        "over_triage_rate": report.get("over_triage_rate"),
    }
    facts = report.get("facts_fusion")
    if facts:  # the bundle fuses clinical facts (HAM10000: age, sex, site): its answers given them, as served
        doc["with_facts"] = {"facts": facts["facts"], **{k: facts.get(k) for k in (
            "balanced_accuracy", "accuracy", "macro_auc", "per_class_recall", "mean_set_size", "critical_miss_rate",
            "over_triage_rate")}}
    (out / "demo.json").write_text(json.dumps(doc, indent=1))
    return doc


if __name__ == "__main__":
    d = record(Path(sys.argv[1]))
    recall = d["per_class_recall"]
    assert isinstance(recall, dict)
    print(f"demo: {d['wall_s']} s to the server; test balanced accuracy {d['balanced_accuracy']:.3f}, "
          + ", ".join(f"{c} {r:.2f}" for c, r in recall.items()))
    with_facts = d.get("with_facts")
    if isinstance(with_facts, dict):
        print(f"      with the clinical facts ({', '.join(with_facts['facts'])}): balanced accuracy "
              f"{with_facts['balanced_accuracy']:.3f}")
