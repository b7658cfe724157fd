"""Turning a user's data (image folder, manifest CSV/JSON, MedMNIST .npz) into a :class:`Dataset`."""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from carelens.data._dataset import Dataset, Example, findings_label
from carelens.data._image_io import IMAGE_SUFFIXES
from carelens.data._medmnist import read_medmnist
from carelens.data._multilabel import is_condition_folder, read_condition_folder, read_odir
from carelens.errors import DataError
from carelens.labels import LabelSpec, load_spec
from carelens.settings import data_root

__all__ = ["HAM10000_FORMAT", "HAM10000_KAGGLE_FORMAT", "ManifestFormat", "is_split_layout", "open_dataset",
           "read_folder", "read_manifest", "read_split_folders", "read_table"]


@dataclass(frozen=True)
class ManifestFormat:
    """Which manifest columns mean what.

    ``path_template`` turns the path column into a file path relative to the manifest's folder
    (``"images/{}.jpg"`` for a column of bare image ids). ``exclude`` names columns that must not
    become clinical facts (for example HAM10000's ``dx_type``, which says how the label was
    confirmed and so leaks the label).
    """

    path_column: str = "path"
    label_column: str = "label"
    group_column: str | None = "group"
    path_template: str = "{}"  # may hold a glob in its folders: "HAM10000_images_part_*/{}.jpg"
    exclude: tuple[str, ...] = ()
    # multi-label: one 0/1 column per condition (no label column), its grade in ``severity_<condition>``
    conditions: tuple[str, ...] = ()
    split_column: str | None = "split"  # train/val/test per row, when the manifest fixes the split
    symptoms_column: str | None = "symptoms"  # symptom ids reported for the case, separated by ";"


HAM10000_FORMAT = ManifestFormat(
    path_column="image_id",
    label_column="dx",
    group_column="lesion_id",
    path_template="images_200x150/{}.jpg",
    exclude=("dx_type",),
)
# The layout of the Kaggle/Harvard download: the images split over two folders beside the metadata CSV
HAM10000_KAGGLE_FORMAT = replace(HAM10000_FORMAT, path_template="HAM10000_images_part_*/{}.jpg")

MASK = re.compile(r"_mask(_\d+)?$", re.IGNORECASE)  # BUSI's segmentation masks: benign (3)_mask.png, ..._mask_1.png
SPLIT_FOLDERS = ("train", "val", "test")
# Kaggle chest X-ray (Kermany et al.): person1_bacteria_1.jpeg, NORMAL2-IM-0123-0001.jpeg, IM-0115-0001.jpeg
_PATIENT = (re.compile(r"^(person\d+)_", re.IGNORECASE), re.compile(r"^((?:NORMAL2-)?IM-\d+)-\d+", re.IGNORECASE))


def _patient(filename: str) -> str | None:
    for pattern in _PATIENT:
        m = pattern.match(filename)
        if m:
            return m.group(1)
    return None

# Public datasets by the folder name they have under $CARELENS_DATA.
_KNOWN = {
    "ham10000": ("ham10000/HAM10000_metadata.csv", "ham10000"),
    "busi": ("busi_breast_ultrasound_256", "busi"),
    "busi_binary": ("busi_breast_ultrasound_256", "busi_binary"),
    "pneumoniamnist": ("pneumoniamnist/pneumoniamnist_reconstructed_official_split_counts.npz", "pneumoniamnist"),
    "odir5k": ("odir5k", "odir5k"),
}


def _image_files(base: Path) -> tuple[list[Path], list[str]]:
    """Image files below ``base`` (hidden ones skipped), and the segmentation masks left out (relative paths)."""
    files, masks = [], []
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts) or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if MASK.search(p.stem):
            masks.append(rel.as_posix())
        else:
            files.append(p)
    return files, masks


def _mask_note(masks: list[str]) -> list[str]:
    if not masks:
        return []
    return [(f"{len(masks)} segmentation mask(s) (*_mask*) left out: they are annotations, not images of a class "
            f"(e.g. {masks[0]})")]


def is_split_layout(base: Path) -> bool:
    """``train/`` and ``test/`` (``val/`` optional), each holding class folders: the Kaggle chest X-ray layout."""
    return all((base / s).is_dir() and any(c.is_dir() for c in (base / s).iterdir()) for s in ("train", "test"))


def read_folder(root: str | Path, name: str | None = None) -> Dataset:
    """One sub-folder per class; nested folders give labels like ``skin/hot_spot``.

    Files directly in ``root`` have no class and are skipped with a warning; files with other
    suffixes are ignored; segmentation masks (``*_mask*``) are left out and named in the audit. Files
    with image suffixes that are not images are kept: the audit reports them and loading skips them.
    A folder of ``train/``, ``val/``, ``test/`` split folders is read by :func:`read_split_folders`.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"image folder {base} does not exist")
    if is_split_layout(base):
        return read_split_folders(base, name)
    files, masks = _image_files(base)
    examples: list[Example] = []
    loose: list[str] = []
    for p in files:
        rel = p.relative_to(base)
        if len(rel.parts) == 1:
            loose.append(rel.as_posix())
            continue
        label = rel.parent.as_posix()
        examples.append(Example(id=rel.as_posix(), label=label, source_label=label, path=p))
    if loose:
        warnings.warn(
            f"{len(loose)} image(s) directly in {base} have no class folder and were skipped "
            f"(e.g. {loose[0]}); put each image in a sub-folder named after its class",
            stacklevel=2,
        )
    if not examples:
        raise DataError(
            f"no images found in class sub-folders of {base} (looked for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return Dataset(name or base.name, examples, source="folder", root=base, notes=_mask_note(masks), excluded=masks)


def read_split_folders(root: str | Path, name: str | None = None) -> Dataset:
    """``train|val|test/<class>/...`` (the Kaggle chest X-ray layout): the split folders are the split, the class
    is the folder below them, and the patient in a file name (``person12_...``, ``IM-0115-...``) is the group.

    The official ``val/`` folder of that set holds 16 images, too few to choose a model on: it is merged into
    train, and :func:`carelens.data.make_splits` takes a patient-grouped validation split from train instead
    (the test folder stays the test split). The dataset's notes say so, and the audit repeats them.
    """
    base = Path(root)
    files, masks = _image_files(base)
    examples: list[Example] = []
    per_split: Counter[str] = Counter()
    for p in files:
        rel = p.relative_to(base)
        if len(rel.parts) < 3 or rel.parts[0] not in SPLIT_FOLDERS:
            continue  # not inside split/class/
        split, label = rel.parts[0], "/".join(rel.parts[1:-1])
        per_split[split] += 1
        examples.append(Example(id=rel.as_posix(), label=label, source_label=label, path=p, group=_patient(p.name),
                                split="test" if split == "test" else "train"))
    notes = _mask_note(masks)
    if per_split["val"]:
        notes.append(f"the official val/ folder ({per_split['val']} images) is merged into train: too few to choose a "
                     "model on; a patient-grouped validation split is taken from train instead (test/ stays the test)")
    if not examples:
        raise DataError(f"no images found in {base}/train|test/<class>/")
    return Dataset(name or base.name, examples, source="split_folders", root=base, notes=notes, excluded=masks)


def read_manifest(path: str | Path, fmt: ManifestFormat | None = None, name: str | None = None) -> Dataset:
    """A CSV or JSON manifest with a path and a label per row, and optional group and facts.

    JSON may be a list of objects or ``{"examples": [...]}``. Paths are relative to the manifest. With
    ``fmt.conditions`` it is multi-label: a 0/1 (or true/false) column per condition, and optional
    ``severity_<condition>`` columns with the grade.
    """
    p = Path(path)
    fmt = fmt or ManifestFormat()
    rows = _read_rows(p)
    if not rows:
        raise DataError(f"manifest {p} has no rows")
    columns = set(rows[0])
    if fmt.conditions:
        return _read_multilabel_rows(p, rows, fmt, name)
    for col, what in ((fmt.path_column, "path"), (fmt.label_column, "label")):
        if col not in columns:
            raise DataError(
                f"manifest {p} has no {what} column {col!r}; its columns are "
                f"{', '.join(sorted(columns))}. Rename the column that holds each image's {what} to {col!r} (a "
                "manifest's columns: path, label, and optionally group, split, symptoms and clinical facts)"
            )
    group_col = fmt.group_column if fmt.group_column in columns else None
    split_col = fmt.split_column if fmt.split_column in columns else None
    symptoms_col = fmt.symptoms_column if fmt.symptoms_column in columns else None
    locate = _locator(p.parent, fmt.path_template)
    skip = {fmt.path_column, fmt.label_column, group_col, split_col, symptoms_col, *fmt.exclude}
    examples = []
    for n, row in enumerate(rows, start=2):
        ref, label = _text(row.get(fmt.path_column)), _text(row.get(fmt.label_column))
        if not ref or not label:
            raise DataError(f"manifest {p}, row {n}: empty {fmt.path_column!r} or {fmt.label_column!r}")
        file = locate(ref)
        group = _text(row.get(group_col)) if group_col else None
        split = _text(row.get(split_col)).lower() if split_col else None
        if split_col and split not in SPLIT_FOLDERS:
            raise DataError(f"manifest {p}, row {n}: split {row.get(split_col)!r} is not one of "
                            f"{', '.join(SPLIT_FOLDERS)}; fill it in for every row or drop the {split_col!r} column")
        facts = {k: _fact(v) for k, v in row.items() if k not in skip}
        reported = tuple(t.strip() for t in _text(row.get(symptoms_col)).split(";") if t.strip()) if symptoms_col else ()
        examples.append(Example(id=ref, label=label, source_label=label, group=group or None, path=file, facts=facts,
                                split=split, symptoms=reported))
    return Dataset(name or p.stem, examples, source="manifest", root=p.parent)


_TRUE, _FALSE = {"1", "true", "yes", "1.0"}, {"0", "false", "no", "0.0", ""}


def _read_multilabel_rows(p: Path, rows: list[dict[str, Any]], fmt: ManifestFormat, name: str | None) -> Dataset:
    columns = set(rows[0])
    missing = [c for c in (fmt.path_column, *fmt.conditions) if c not in columns]
    if missing:
        raise DataError(f"multi-label manifest {p} lacks the column(s) {', '.join(missing)}; its columns are "
                        f"{', '.join(sorted(columns))}. It needs a path column and one 0/1 column per condition.")
    group_col = fmt.group_column if fmt.group_column in columns else None
    locate = _locator(p.parent, fmt.path_template)
    grades = {f"severity_{c}" for c in fmt.conditions}
    skip = {fmt.path_column, group_col, *fmt.conditions, *grades, *fmt.exclude}
    examples = []
    for n, row in enumerate(rows, start=2):
        ref = _text(row.get(fmt.path_column))
        if not ref:
            raise DataError(f"manifest {p}, row {n}: empty {fmt.path_column!r}")
        findings: dict[str, str | None] = {}
        for c in fmt.conditions:
            v = _text(row.get(c)).lower()
            if v not in _TRUE | _FALSE:
                raise DataError(f"manifest {p}, row {n}: condition column {c!r} holds {row.get(c)!r}; use 0/1")
            if v in _TRUE:
                level = _text(row.get(f"severity_{c}")).lower()
                findings[c] = None if level in ("", "none", "unknown") else level
        label = findings_label(findings)
        group = _text(row.get(group_col)) if group_col else None
        examples.append(Example(id=ref, label=label, source_label=label, group=group or None, path=locate(ref),
                                facts={k: _fact(v) for k, v in row.items() if k not in skip}, findings=findings))
    return Dataset(name or p.stem, examples, source="manifest", root=p.parent)


def _locator(folder: Path, template: str) -> Callable[[str], Path]:
    """Reference -> file. A template with a glob in its folders is resolved through one index of the files."""
    head, _, leaf = template.rpartition("/")
    if not any(ch in head for ch in "*?["):
        return lambda ref: folder / template.format(ref)
    index = {f.name: f for d in sorted(folder.glob(head)) if d.is_dir() for f in d.iterdir()}
    return lambda ref: index.get(leaf.format(ref), folder / head / leaf.format(ref))


def open_dataset(source: str | Path, spec: str | Path | LabelSpec | None = None) -> Dataset:
    """Open any supported source, optionally applying a label spec.

    ``source`` is a folder of class folders, a manifest ``.csv``/``.json``, a MedMNIST ``.npz``, a
    folder holding HAM10000's metadata CSV, or the name of a public set under ``$CARELENS_DATA``
    (``ham10000``, ``busi``, ``busi_binary``, ``pneumoniamnist``, ``odir5k``), which also picks its spec.
    Multi-label: an ODIR-5K folder, a ``<condition>/<severity>/`` folder with JSON annotations, or a manifest
    read with a multi-label spec (its condition ids name the 0/1 columns).
    """
    p = Path(source)
    default_spec: str | None = None
    if not p.exists() and str(source) in _KNOWN:
        rel, default_spec = _KNOWN[str(source)]
        p = data_root() / rel
        if not p.exists():
            raise DataError(
                f"public set {source!r} is not at {p}. Set CARELENS_DATA to the folder that holds it."
            )
    if not p.exists():
        raise DataError(f"{p} does not exist (expected an image folder, a manifest or a .npz file)")
    if p.is_dir() and (p / "HAM10000_metadata.csv").is_file():
        p = p / "HAM10000_metadata.csv"
    if p.is_file() and p.name == "HAM10000_metadata.csv":
        kaggle = not (p.parent / "images_200x150").is_dir() and any(p.parent.glob("HAM10000_images_part_*"))
        ds = read_manifest(p, HAM10000_KAGGLE_FORMAT if kaggle else HAM10000_FORMAT, name="ham10000")
    elif p.suffix == ".npz":
        ds = read_medmnist(p)
    elif p.is_dir() and (p / "full_df.csv").is_file():
        ds = read_odir(p)
    elif p.suffix.lower() in (".csv", ".json"):
        chosen_spec = load_spec(spec) if spec is not None else None
        multi = chosen_spec is not None and chosen_spec.multilabel
        ds = read_manifest(p, ManifestFormat(conditions=tuple(chosen_spec.class_ids)) if multi and chosen_spec else None)
    elif p.is_dir() and is_condition_folder(p):
        ds = read_condition_folder(p)
    elif p.is_dir():
        ds = read_folder(p)
    else:
        raise DataError(f"{p}: unsupported source (give a folder, a .csv/.json manifest or a .npz)")
    chosen = spec if spec is not None else default_spec
    return ds.with_spec(load_spec(chosen)) if chosen is not None else ds


def read_table(path: str | Path, what: str = "manifest") -> list[dict[str, Any]]:
    """The rows of a CSV (or a JSON list of objects / ``{"examples": [...]}``); DataError when the file is
    missing, unparseable or has no rows, naming ``what`` it was meant to be."""
    p = Path(path)
    rows = _read_rows(p, what)
    if not rows:
        raise DataError(f"{what} {p} has no rows")
    return rows


def _read_rows(p: Path, what: str = "manifest") -> list[dict[str, Any]]:
    if not p.is_file():
        raise DataError(f"{what} {p} does not exist")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            rows = data.get("examples") if isinstance(data, dict) else data
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise DataError(f"{what} {p}: expected a list of objects or {{'examples': [...]}}")
            return rows
        with p.open(newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DataError(f"{what} {p} cannot be parsed: {exc}") from None


def _text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _fact(v: Any) -> Any:
    """Numbers become numbers, blanks and 'unknown' become None: missing is explicit."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return None if isinstance(v, float) and math.isnan(v) else v
    s = str(v).strip()
    if s == "" or s.lower() in ("nan", "na", "unknown", "?"):
        return None
    try:
        f = float(s)
    except ValueError:
        return s
    return int(f) if f.is_integer() and "." not in s else f
