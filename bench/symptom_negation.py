"""Hand-written negation vs medspaCy's ConText on the labelled lay complaints (issue 18), case `symptom_negation`:
python bench/symptom_negation.py   (needs .venv-medspacy: python3.11 -m venv .venv-medspacy &&
.venv-medspacy/bin/pip install medspacy==1.3.1; it cannot share carelens's environment: spaCy 3.7 needs numpy < 2)

Both decide negation on the same target spans: the symptoms carelens's parser found in each complaint (phrases,
synonyms, embedding matches). carelens: its cue / scope / terminator / pseudo-negation rules; ConText: medspaCy's
default rules after its PyRuSH sentence splitter. Scored per half (tune / test) with the same measures as
`symptom_parse`. Also the serving cost of ConText: latency per complaint and the memory spaCy and medspaCy add.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, write_result

from carelens.symptoms import SymptomBundle

ROOT = Path(__file__).resolve().parents[1]
MEDSPACY_PY = ROOT / ".venv-medspacy" / "bin" / "python"


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "symptoms"))
    import lay_complaints as lc

    if not MEDSPACY_PY.is_file():
        raise SystemExit(f"{MEDSPACY_PY} is missing: see this script's docstring")
    t0 = time.perf_counter()
    items = lc.complaints()
    bundle = SymptomBundle.load(OUT / "symptom_bundle")  # made by bench/symptom_parse.py
    parsed = [bundle.parser.parse(c.text) for c in items]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps([{"text": c.text, "spans": [m["span"] for m in p.matches]}
                                   for c, p in zip(items, parsed, strict=True)]))
        subprocess.run([str(MEDSPACY_PY), str(ROOT / "bench" / "_context_negation.py"), str(src), str(dst)], check=True)
        ctx = json.loads(dst.read_text())

    def sets(p, negs):  # type: ignore[no-untyped-def]
        present = {str(m["id"]) for m, n in zip(p.matches, negs, strict=True) if not n}
        absent = {str(m["id"]) for m, n in zip(p.matches, negs, strict=True) if n}
        return present - absent, absent

    metrics: dict[str, object] = {}
    for half in ("tune", "test"):
        idx = [i for i, c in enumerate(items) if c.half == half]
        chosen = [items[i] for i in idx]
        ours = lc.score(chosen, [sets(parsed[i], [bool(m["negated"]) for m in parsed[i].matches]) for i in idx])
        theirs = lc.score(chosen, [sets(parsed[i], ctx["negated"][i]) for i in idx])
        for k in ("negated_precision", "negated_recall", "present_precision", "exact_match"):
            metrics[f"{half}_{k}_carelens"] = round(ours[k], 4)
            metrics[f"{half}_{k}_context"] = round(theirs[k], 4)
    metrics["context_p50_ms"] = round(float(np.percentile(ctx["latency_ms"], 50)), 2)
    metrics["context_added_rss_mb"] = round(ctx["rss_after_mb"] - ctx["rss_before_mb"], 1)
    metrics["medspacy"] = ctx["medspacy"]
    print(write_result("symptom_negation", "lay complaints (tests/symptoms/lay_complaints.py)",
                       time.perf_counter() - t0, metrics, {},
                       split="both halves (tune: carelens's rules were tuned there; test: held out)",
                       notes="command: python bench/symptom_negation.py; same target spans for both (carelens's "
                             "matches); ConText with medspaCy's default rules, PyRuSH sentences; its cost measured "
                             "in its own environment (.venv-medspacy), latency including tokenisation."))


if __name__ == "__main__":
    main()
