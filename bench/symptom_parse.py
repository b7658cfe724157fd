"""Symptom parsing of complaints written as people write them (issue 18), case `symptom_parse`:
python bench/symptom_parse.py

The labelled complaints of tests/symptoms/lay_complaints.py (patients and pet owners): pools A, B, C (templates x lay
phrasings), D and E (free text) are the `tune` half; the headline figures are the `test` half's, pool F (65 free
complaints, committed before the parser changes it measures and never used to tune them). Each pool was the test
half in turn and was measured blind once before its failures were read (the history is in the notes). The baseline
is the parser at 553dcd8 (pool F committed, before the changes pool E's failures led to) on pool F, in aggregate
only. Also: parse
latency per complaint (p50, p90) and the resident memory the parser adds to a process that already holds the encoder
(vocabulary patterns and phrase embeddings).
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
                       split="test half (pool F: 65 free complaints unseen in tuning)",
                       notes="command: python bench/symptom_parse.py; added_rss_mb: what a parser (its phrase "
                             "patterns, phrase embeddings and spelling lexicon) adds to a process that holds the "
                             "symptom bundle and its MiniLM encoder (symptom_bundle_rss_mb: the bundle itself); "
                             "latency: the parser alone, the encoder called only for text no phrase explains. The "
                             "symptom model's top-3 accuracy is not touched by the parser (it reads symptom ids). "
                             "medspaCy's ConText: bench/symptom_negation.py. BLIND FIGURES, each pool measured once "
                             "before its failures were read (present P/R, negated P/R, exact): pool C (templates) at "
                             "c5a82ac 0.915/0.833, 0.976/0.746, 0.638; pool D (107 free complaints) at 6155378 "
                             "0.984/0.879, 1.000/0.938, 0.832; pool E (70 free complaints) at 3b0f257 0.928/0.811, "
                             "0.786/0.786, 0.700 and after the changes pool D's failures led to (spelling correction, "
                             "'don't feel' as a cue, post-cues only at the end of what they say, synonyms and frames "
                             "for vision, weight gain, mood, joints) 0.930/0.842, 0.846/0.786, 0.729; pool F (65 free "
                             "complaints, 34 negated symptoms) at 553dcd8 0.972/0.896, 1.000/0.912, 0.831 (baseline) "
                             "and after the changes pool E's failures led to (contexts: 'no blood' beside diarrhoea or "
                             "a cough; 'wouldn't say' as a cue; 'he's fine today' as a resolution; synonyms and "
                             "frames for weight in kg, frequent urination, puffy face, weak legs, vertigo, "
                             "concentration, low mood) these metrics. The 'no blood' context was asked for by pools D "
                             "and E; pool F, written before by the same person, has one complaint it serves. All "
                             "pools were written by the parser's authors: blind to the tuning, not to the people. The parser before issue "
                             "18 scored present P 0.697 R 0.596, negated P 0.774 R 0.373, exact 0.327 on pool B. "
                             "INDEPENDENT TEXT (not in this repository: the public Symptom2Disease test split, whose "
                             "licence could not be checked; symptoms labelled by hand before any parser ran on them; "
                             "present symptoms only): set 3 (16 descriptions), blind, parser of ea45eee: recall 0.848, precision "
                             "0.983. The threshold 0.70 was chosen on pools A and B."))


# The parser at 553dcd8 (pool F committed, nothing else changed since pool E was measured) on pool F, measured on
# 2026-11-27 before the parser changes that followed (its vocabulary differs, so it cannot run beside them).
BASELINE = {"present_precision": 0.972, "present_recall": 0.896, "negated_precision": 1.0,
            "negated_recall": 0.912, "exact_match": 0.831}

if __name__ == "__main__":
    main()
