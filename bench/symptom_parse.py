"""Symptom parsing of complaints written as people write them (issue 18), case `symptom_parse`:
python bench/symptom_parse.py

The labelled complaints of tests/symptoms/lay_complaints.py (518: templates x lay phrasings, patients and pet
owners), split by template and by phrasing: the parser's synonyms and rules were tuned on the `tune` half only (pools
A and B); the headline figures are the `test` half's (pool C, written before the changes it measures). `tune_pool_b`
is the first held-out half, kept for comparison with the figures recorded before pool C existed. The baseline is the parser before issue 18 (clause splitting on and/with,
negation only at the start of a clause, the old synonym list) with the same encoder and threshold, in the same run.
Also: parse latency per complaint (p50, p90) and the resident memory the parser adds to a process that already
holds the encoder (vocabulary patterns and phrase embeddings).
"""

from __future__ import annotations

import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, rss_mb, write_result

from carelens.settings import data_root
from carelens.symptoms import SymptomBundle, SymptomParser, build_symptom_bundle

ROOT = Path(__file__).resolve().parents[1]


def _complaints():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "tests" / "symptoms"))
    import lay_complaints

    return lay_complaints


def main() -> None:
    import os

    lc = _complaints()
    items = lc.complaints()
    out = OUT / "symptom_bundle"
    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)  # built anew: it carries the vocabulary, synonyms and frames as they are now
    build_symptom_bundle(data_root() / "symptom_disease_kaggle41", out)
    empty = rss_mb(os.getpid())
    bundle = SymptomBundle.load(out)  # the encoder, the vocabulary with its synonyms, the symptom model
    loaded = rss_mb(os.getpid())
    parser = SymptomParser(bundle.parser.vocab, bundle.parser.encoder, bundle.parser.threshold)  # a second one
    parser.parse("warm up")  # its patterns and phrase embeddings (computed on first use)
    with_parser = rss_mb(os.getpid())
    lat = []
    parsed = []
    for c in items:
        t = time.perf_counter()
        r = parser.parse(c.text)
        lat.append((time.perf_counter() - t) * 1000)
        parsed.append((set(r.present), set(r.absent)))
    halves = {h: [i for i, c in enumerate(items) if c.half == h] for h in ("tune", "test")}
    halves["tune_pool_b"] = [i for i, c in enumerate(items) if c.pool == "B"]
    figures = {h: lc.score([items[i] for i in idx], [parsed[i] for i in idx]) for h, idx in halves.items()}
    metrics = {k: round(v, 4) for k, v in figures["test"].items() if k != "complaints"}
    metrics |= {"complaints_test": len(halves["test"]), "complaints_tune": len(halves["tune"]),
                "tune": {k: round(v, 4) for k, v in figures["tune"].items()},
                "tune_pool_b": {k: round(v, 4) for k, v in figures["tune_pool_b"].items()},
                "parse_p50_ms": round(float(np.percentile(lat, 50)), 2),
                "parse_p90_ms": round(float(np.percentile(lat, 90)), 2),
                "added_rss_mb": round(with_parser - loaded, 1), "symptom_bundle_rss_mb": round(loaded - empty, 1),
                "peak_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    targets = {"present_precision": 0.95, "present_recall": 0.92, "negated_precision": 0.95,
               "negated_recall": 0.90, "exact_match": 0.80, "parse_p50_ms": 5.0, "added_rss_mb": 60.0}
    print(write_result("symptom_parse", "lay complaints (tests/symptoms/lay_complaints.py)", time.perf_counter() - t0,
                       metrics, targets, baseline={"name": "the parser at c5a82ac, the commit that froze pool C, "
                                                           "before frames and the synonyms that followed",
                                                   "metrics": BASELINE},
                       split="test half (pool C: templates 37-56 and phrasings unseen in tuning)",
                       notes="command: python bench/symptom_parse.py; added_rss_mb: what a parser (its phrase "
                             "patterns and phrase embeddings) adds to a process that holds the symptom bundle and its "
                             "MiniLM encoder (symptom_bundle_rss_mb: the bundle itself); latency: the parser alone, "
                             "the encoder called only for text no phrase explains. The symptom model's top-3 "
                             "accuracy is not touched by the parser (it reads symptom ids). medspaCy's ConText: "
                             "bench/symptom_negation.py. NOT A BLIND FIGURE: pool C was written and committed before "
                             "the frames and synonyms it measures (c5a82ac, baseline), but those synonyms were written "
                             "by someone who had read pool C; the blind figure of the parser before them is the "
                             "baseline. The parser before issue 18 scored present P 0.697 R 0.596, negated P 0.774 "
                             "R 0.373, exact 0.327 on the first held-out half (pool B, tune_pool_b now). "
                             "INDEPENDENT TEXT (not in this repository: the public Symptom2Disease test split, whose "
                             "licence could not be checked; symptoms labelled by hand before any parser ran on them; "
                             "present symptoms only, negation is rare there). Set 1 (23 descriptions) and set 2 (25) "
                             "were each measured once blind and then became tuning data: set 1 c5a82ac recall 0.859 "
                             "precision 0.889; set 2 blind 0.833 / 0.950 (c5a82ac 0.867 / 0.929); after tuning on "
                             "them 0.913 / 1.000 and 0.975 / 0.978. Set 3 (16 descriptions: typhoid, dengue, varicose "
                             "veins), blind, the final parser: recall 0.848, precision 0.983, 7 of 16 wholly right "
                             "(c5a82ac at its threshold 0.62: 0.894 / 0.969, 9); the final parser with threshold 0.62: "
                             "0.894 / 0.969, 9. The threshold 0.70 was chosen on pools A and B before sets 2 and 3 "
                             "were seen; on sets 1 and 2 F1 is flat from 0.62 to 0.74 (0.967-0.970), so it is left "
                             "as chosen rather than moved by set 3."))


# The parser at c5a82ac (pool C frozen, nothing else changed) on pool C, measured with this script on 2026-11-27 (the
# vocabulary it needs is not the current one, so it cannot run beside the new parser in one process).
BASELINE = {"present_precision": 0.9148, "present_recall": 0.8327, "negated_precision": 0.9762,
            "negated_recall": 0.7455, "exact_match": 0.6378}

if __name__ == "__main__":
    main()
