"""Bring your own symptom table: one row per case, in either common shape, for any species.

* ``Symptom 1``, ``Symptom 2`` ... columns holding symptom names (the livestock table's shape);
* one column per symptom holding 0/1 (the Kaggle shape).

The label column is ``Disease``, ``prognosis``, ``diagnosis``, ``condition`` or ``label`` (or named). Other
columns (age, temperature, animal ...) are kept as facts but not used by the symptom model. Without a label
spec, one is made from the table's labels (triage ``consultation`` each: edit it before relying on it).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from carelens.data import read_table
from carelens.errors import DataError
from carelens.labels import LabelSpec
from carelens.symptoms._data import SymptomTable
from carelens.symptoms._vocabulary import (
    Symptom,
    Vocabulary,
    clean_symptom_name,
    contexts_of,
    frames_of,
    milder_of,
    symptom_group,
    synonyms_of,
)

__all__ = ["LABEL_COLUMNS", "load_symptom_table", "spec_from_labels"]

LABEL_COLUMNS = ("disease", "prognosis", "diagnosis", "condition", "label")
LIST_COLUMN = re.compile(r"^symptom[\s_]*\d+$", re.IGNORECASE)
_BINARY = {"0", "1", "0.0", "1.0", ""}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def spec_from_labels(name: str, labels: list[str], species: str) -> LabelSpec:
    """A label spec with one class per distinct label (merge rules map the raw labels onto the ids)."""
    classes = sorted({_slug(x): x.strip() for x in labels}.items())
    if len(classes) < 2:
        raise DataError(f"the table has {len(classes)} distinct label(s); a symptom model needs at least two")
    return LabelSpec.model_validate({
        "name": _slug(name) or "symptoms", "title": f"Symptom model from {name}", "species": [species],
        "classes": [{"id": cid, "name": raw, "triage": "consultation"} for cid, raw in classes],
        "merge": [{"from": [raw], "to": cid} for cid, raw in classes if raw != cid],
    })


def load_symptom_table(path: str | Path, *, spec: LabelSpec | None = None, species: str = "human",
                       label_column: str | None = None, synonyms: str | Path | None = None) -> SymptomTable:
    """The table as a 0/1 matrix over its own vocabulary, with labels mapped by ``spec`` (made when None).

    ``synonyms``: your synonym file for the table's symptoms (``carelens symptoms synonyms --table``), used with the
    curated ones where ids match; the parser gives it the same negation and severity handling."""
    p = Path(path)
    rows = read_table(p, "symptom table")
    columns = list(rows[0])
    label = label_column or next((c for c in columns if c.strip().lower() in LABEL_COLUMNS), None)
    if label is None or label not in columns:
        raise DataError(f"symptom table {p} has no label column (one of {', '.join(LABEL_COLUMNS)}); its columns are "
                        f"{', '.join(columns)}. Name it with --label-column.")
    listed = [c for c in columns if LIST_COLUMN.match(c.strip())]
    if listed:
        cases = [{clean_symptom_name(r[c]) for c in listed if (r.get(c) or "").strip()} for r in rows]
    else:
        binary = [c for c in columns if c != label and all((r.get(c) or "").strip() in _BINARY for r in rows)]
        if not binary:
            raise DataError(f"symptom table {p} has neither 'Symptom 1..n' columns nor 0/1 symptom columns")
        cases = [{clean_symptom_name(c) for c in binary if (r.get(c) or "").strip() in ("1", "1.0")} for r in rows]
    ids = sorted(set().union(*cases) - {""})
    extra = Path(synonyms) if synonyms is not None else None
    if extra is not None and not extra.is_file():
        raise DataError(f"synonym file {extra} not found; write one with `carelens symptoms synonyms --table {p}`")
    vocab = Vocabulary([Symptom(sid, sid.replace("_", " "), symptom_group(sid), 3, synonyms_of(sid, extra),
                                milder_of(sid, extra), frames_of(sid, extra), contexts_of(sid, extra))
                        for sid in ids])
    labels = [(r.get(label) or "").strip() for r in rows]
    spec = spec or spec_from_labels(p.stem, [x for x in labels if x], species)
    mapped = spec.map_labels(labels)
    col = {sid: j for j, sid in enumerate(ids)}
    keep = [i for i, m in enumerate(mapped) if m is not None]
    X = np.zeros((len(keep), len(ids)), np.int8)
    for n, i in enumerate(keep):
        for sid in cases[i] - {""}:
            X[n, col[sid]] = 1
    y = np.asarray([spec.index(mapped[i]) for i in keep])  # type: ignore[arg-type]
    return SymptomTable(X, y, vocab, spec)
