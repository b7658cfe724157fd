"""medspaCy's ConText over given target spans (run by bench/symptom_negation.py in the separate environment
.venv-medspacy: medspaCy 1.3.1 needs spaCy 3.7 and numpy < 2, which carelens's numpy 2 excludes).

python bench/_context_negation.py IN.json OUT.json: IN holds [{"text", "spans": [[start, end], ...]}]; OUT gets
{"negated": [[bool per span] per text], "latency_ms": [...], "rss_before_mb", "rss_after_mb"}."""

import json
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    items = json.loads(Path(sys.argv[1]).read_text())
    before = rss_mb()
    import medspacy
    from loguru import logger

    logger.remove()  # PyRuSH logs every token at DEBUG level

    nlp = medspacy.load(enable=["medspacy_pyrush", "medspacy_context"])  # sentence splitter + ConText, default rules
    context = nlp.get_pipe("medspacy_context")
    nlp(items[0]["text"])  # warm up
    after = rss_mb()
    negated, latency = [], []
    for it in items:
        t = time.perf_counter()
        doc = nlp.make_doc(it["text"])
        for name, proc in nlp.pipeline:
            if name != "medspacy_context":
                doc = proc(doc)
        spans = [doc.char_span(a, b, label="SYMPTOM", alignment_mode="expand") for a, b in it["spans"]]
        ents, keep = [], []
        for s in spans:  # overlapping spans cannot all be entities: the first one stands for the others
            if s is not None and not any(s.start < e.end and e.start < s.end for e in ents):
                ents.append(s)
            keep.append(s)
        doc.ents = ents
        doc = context(doc)
        flags = {(e.start_char, e.end_char): bool(e._.is_negated) for e in doc.ents}
        negated.append([flags.get((s.start_char, s.end_char), False) if s is not None else False for s in keep])
        latency.append((time.perf_counter() - t) * 1000)
    Path(sys.argv[2]).write_text(json.dumps({"negated": negated, "latency_ms": latency, "rss_before_mb": before,
                                             "rss_after_mb": after, "medspacy": medspacy.__version__}))


if __name__ == "__main__":
    main()
