"""Multi-label sources: several findings per image, each with a severity when the source grades it.

* :func:`read_condition_folder`: ``<root>/<condition>/<severity>/<name>.png`` with one JSON annotation per
  image (the skin-condition layout; ``healthy/`` holds images with no condition; ``*_flipped`` twins are the
  same photo mirrored and share a group).
* :func:`read_odir`: ODIR-5K fundus photographs, with **per-eye** labels derived from each eye's diagnostic
  keywords (the CSV's label columns are per patient: 20.8% of images would carry the other eye's disease).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from carelens.data._dataset import Dataset, Example, findings_label
from carelens.data._image_io import IMAGE_SUFFIXES
from carelens.errors import DataError

__all__ = ["ODIR_GRADES", "is_condition_folder", "odir_eye_findings", "read_condition_folder", "read_odir"]

ABSENT = ("none", "", None)
FLIPPED = re.compile(r"_flipped$", re.IGNORECASE)


def is_condition_folder(base: Path) -> bool:
    """``<condition>/<severity>/<image>`` with a JSON annotation beside at least one image."""
    for img in base.glob("*/*/*"):
        if img.suffix.lower() in IMAGE_SUFFIXES and img.with_suffix(".json").is_file():
            return True
    return False


def _annotation_findings(doc: dict[str, Any], where: str) -> dict[str, str | None]:
    """Conditions present -> severity, from either annotation form."""
    targets = doc.get("classification_targets")
    if isinstance(targets, dict):
        grades = doc.get("severity_targets") or {}
        out: dict[str, str | None] = {}
        for cond, present in targets.items():
            if present:
                level = grades.get(cond)
                out[str(cond)] = None if level in ABSENT else str(level)
        return out
    cond = doc.get("skin_condition")
    if not isinstance(cond, str) or not cond:
        raise DataError(f"{where}: the annotation has neither `classification_targets` nor `skin_condition`")
    if cond == "healthy":
        return {}
    level = doc.get("severity")
    return {cond: None if level in ABSENT else str(level)}


def read_condition_folder(root: str | Path, name: str | None = None) -> Dataset:
    """The skin-condition layout: ``<condition>/<severity>/<name>.(png|jpg)`` + ``<name>.json``.

    The JSON's ``classification_targets``/``severity_targets`` give every condition present; an annotation
    with only ``skin_condition`` + ``severity`` means that one condition (``healthy``: none). Demographics
    become clinical facts. An image without its JSON falls back to its folders (condition/severity).
    """
    base = Path(root)
    examples: list[Example] = []
    fallback = 0
    for img in sorted(base.glob("*/*/*")):
        if img.suffix.lower() not in IMAGE_SUFFIXES or img.name.startswith("."):
            continue
        rel = img.relative_to(base).as_posix()
        ann = img.with_suffix(".json")
        if ann.is_file():
            try:
                doc = json.loads(ann.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise DataError(f"annotation {ann} cannot be read: {exc}") from None
            findings = _annotation_findings(doc, str(ann))
            facts = {k: v for k, v in (doc.get("demographics") or {}).items() if isinstance(v, (str, int, float))}
        else:
            cond, level = img.parent.parent.name, img.parent.name
            findings = {} if cond == "healthy" else {cond: level}
            facts = {}
            fallback += 1
        stem = FLIPPED.sub("", img.stem)
        group = f"{img.parent.relative_to(base).as_posix()}/{stem}"  # a mirrored twin joins its original
        label = findings_label(findings)
        examples.append(Example(id=rel, label=label, source_label=label, group=group, path=img, facts=facts,
                                findings=findings))
    if not examples:
        raise DataError(f"no images found in {base}/<condition>/<severity>/")
    twins = sum(1 for e in examples if e.path is not None and FLIPPED.search(e.path.stem))
    notes = [f"{twins} mirrored twin(s) (*_flipped) grouped with their original so no photo crosses splits"] if twins else []
    if fallback:
        notes.append(f"{fallback} image(s) without a JSON annotation: labelled from their folders (condition/severity)")
    return Dataset(name or base.name, examples, source="condition_folder", root=base, notes=notes)


# -- ODIR-5K ------------------------------------------------------------------------------------------------
ODIR_GRADES = {  # diabetic-retinopathy keyword -> grade (None: retinopathy without a grade)
    "mild nonproliferative retinopathy": "mild",
    "moderate non proliferative retinopathy": "moderate",
    "suspected moderate non proliferative retinopathy": "moderate",
    "severe nonproliferative retinopathy": "severe",
    "proliferative diabetic retinopathy": "proliferative",
    "severe proliferative diabetic retinopathy": "proliferative",
    "diabetic retinopathy": None,
    "suspected diabetic retinopathy": None,
    "suspicious diabetic retinopathy": None,
}
_ODIR_LABELS = {
    "normal fundus": "N", "glaucoma": "G", "suspected glaucoma": "G", "cataract": "C", "suspected cataract": "C",
    "age-related macular degeneration": "A", "dry age-related macular degeneration": "A",
    "wet age-related macular degeneration": "A", "hypertensive retinopathy": "H", "pathological myopia": "M",
    "myopia retinopathy": "M", "myopic maculopathy": "M",
}
_ODIR_IGNORE = {"lens dust", "low image quality", "optic disk photographically invisible", "image offset",
                "anterior segment image", "no fundus image"}
_ODIR_SAME_PATIENT = {"973": "352", "3185": "2487"}  # the same photographs under two ids (SOURCES.md)
ODIR_COLUMNS = ("Normal", "Diabetes", "Glaucoma", "Cataract", "Age related Macular Degeneration", "Hypertension",
                "Pathological Myopia", "Other diseases/abnormalities")  # N D G C A H M O, per patient


def odir_eye_findings(keywords: str) -> dict[str, str | None]:
    """Per-eye labels (N D G C A H M O) and the retinopathy grade from one eye's diagnostic keywords."""
    out: dict[str, str | None] = {}
    for raw in re.split(r"[，,]", keywords):
        kw = " ".join(raw.split()).lower()
        if not kw or kw in _ODIR_IGNORE:
            continue
        if kw in ODIR_GRADES:
            out["D"] = out.get("D") or ODIR_GRADES[kw]
        else:
            out.setdefault(_ODIR_LABELS.get(kw, "O"), None)
    if len(out) > 1:
        out.pop("N", None)
    return out


def read_odir(root: str | Path, name: str = "odir5k") -> Dataset:
    """ODIR-5K: ``full_df.csv`` + ``images_224/<ID>_<left|right>.jpg`` (or ``preprocessed_images/``).

    Labels per eye from its keywords (:func:`odir_eye_findings`); the patient (two ids merged where the same
    patient appears twice) is the group; age, sex and the eye are clinical facts (age 1 is a placeholder in
    15 patients and becomes unknown).
    """
    base = Path(root)
    csv_path = base / "full_df.csv"
    folder = next((base / d for d in ("images_224", "preprocessed_images") if (base / d).is_dir()), None)
    if not csv_path.is_file() or folder is None:
        raise DataError(f"{base} is not an ODIR-5K folder: it needs full_df.csv and images_224/ (or preprocessed_images/)")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    examples: dict[str, Example] = {}
    for row in rows:
        pid = row["ID"].strip()
        age = int(float(row["Patient Age"])) if row.get("Patient Age") else None
        for side in ("Left", "Right"):
            fname = row[f"{side}-Fundus"].strip()
            path = folder / fname
            if fname in examples or not path.is_file():
                continue  # a patient's two rows repeat both eyes; an eye without an image was dropped upstream
            findings = odir_eye_findings(row[f"{side}-Diagnostic Keywords"])
            if not findings:
                continue
            label = findings_label(findings)
            examples[fname] = Example(
                id=fname, label=label, source_label=label, group=_ODIR_SAME_PATIENT.get(pid, pid), path=path,
                facts={"age": age if age and age > 1 else None, "sex": row["Patient Sex"].strip().lower(),
                       "eye": side.lower()},
                findings=findings)
    if not examples:
        raise DataError(f"no ODIR-5K images found in {folder}")
    moved = _patient_label_mismatch(rows, examples)
    notes = [(f"labels are per eye, from each eye's keywords: {moved} of {len(examples)} images differ from the "
             "CSV's per-patient labels (which carry the other eye's disease)"),
             "patients 352/973 and 2487/3185 are the same people under two ids: each pair is one group"]
    return Dataset(name, list(examples.values()), source="odir", root=base, notes=notes)


def _patient_label_mismatch(rows: list[dict[str, Any]], examples: dict[str, Example]) -> int:
    """Images whose own-eye labels differ from their row's per-patient label columns."""
    letters = "NDGCAHMO"
    seen: set[str] = set()
    for row in rows:
        patient = {letters[i] for i, col in enumerate(ODIR_COLUMNS)
                   if str(row.get(col, row.get(col + " ", "0"))).strip() == "1"}
        for side in ("Left", "Right"):
            e = examples.get(row[f"{side}-Fundus"].strip())
            if e is not None and set(e.findings or {}) != patient:
                seen.add(e.id)
    return len(seen)
