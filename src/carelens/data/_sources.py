"""Turning a user's data (image folder, manifest CSV/JSON, MedMNIST .npz) into a :class:`Dataset`."""

from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carelens.data._dataset import Dataset, Example
from carelens.data._image_io import IMAGE_SUFFIXES
from carelens.data._medmnist import read_medmnist
from carelens.errors import DataError
from carelens.labels import LabelSpec, load_spec
from carelens.settings import data_root

__all__ = ["HAM10000_FORMAT", "ManifestFormat", "open_dataset", "read_folder", "read_manifest"]


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
    path_template: str = "{}"
    exclude: tuple[str, ...] = ()


HAM10000_FORMAT = ManifestFormat(
    path_column="image_id",
    label_column="dx",
    group_column="lesion_id",
    path_template="images_200x150/{}.jpg",
    exclude=("dx_type",),
)

# Public datasets by the folder name they have under $CARELENS_DATA.
_KNOWN = {
    "ham10000": ("ham10000/HAM10000_metadata.csv", "ham10000"),
    "busi": ("busi_breast_ultrasound_256", "busi"),
    "busi_binary": ("busi_breast_ultrasound_256", "busi_binary"),
    "pneumoniamnist": ("pneumoniamnist/pneumoniamnist_reconstructed_official_split_counts.npz", "pneumoniamnist"),
}


def read_folder(root: str | Path, name: str | None = None) -> Dataset:
    """One sub-folder per class; nested folders give labels like ``skin/hot_spot``.

    Files directly in ``root`` have no class and are skipped with a warning; files with other
    suffixes are ignored. Files with image suffixes that are not images are kept: the audit
    reports them and loading skips them.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"image folder {base} does not exist")
    examples: list[Example] = []
    loose: list[str] = []
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
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
    return Dataset(name or base.name, examples, source="folder", root=base)


def read_manifest(path: str | Path, fmt: ManifestFormat | None = None, name: str | None = None) -> Dataset:
    """A CSV or JSON manifest with a path and a label per row, and optional group and facts.

    JSON may be a list of objects or ``{"examples": [...]}``. Paths are relative to the manifest.
    """
    p = Path(path)
    fmt = fmt or ManifestFormat()
    rows = _read_rows(p)
    if not rows:
        raise DataError(f"manifest {p} has no rows")
    columns = set(rows[0])
    for col, what in ((fmt.path_column, "path"), (fmt.label_column, "label")):
        if col not in columns:
            raise DataError(
                f"manifest {p} has no {what} column {col!r}; its columns are "
                f"{', '.join(sorted(columns))}. Name the right one (--{what}-column)."
            )
    group_col = fmt.group_column if fmt.group_column in columns else None
    skip = {fmt.path_column, fmt.label_column, group_col, *fmt.exclude}
    examples = []
    for n, row in enumerate(rows, start=2):
        ref, label = _text(row.get(fmt.path_column)), _text(row.get(fmt.label_column))
        if not ref or not label:
            raise DataError(f"manifest {p}, row {n}: empty {fmt.path_column!r} or {fmt.label_column!r}")
        file = p.parent / fmt.path_template.format(ref)
        group = _text(row.get(group_col)) if group_col else None
        facts = {k: _fact(v) for k, v in row.items() if k not in skip}
        examples.append(Example(id=ref, label=label, source_label=label, group=group or None, path=file, facts=facts))
    return Dataset(name or p.stem, examples, source="manifest", root=p.parent)


def open_dataset(source: str | Path, spec: str | Path | LabelSpec | None = None) -> Dataset:
    """Open any supported source, optionally applying a label spec.

    ``source`` is a folder of class folders, a manifest ``.csv``/``.json``, a MedMNIST ``.npz``, a
    folder holding HAM10000's metadata CSV, or the name of a public set under ``$CARELENS_DATA``
    (``ham10000``, ``busi``, ``busi_binary``, ``pneumoniamnist``), which also picks its spec.
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
        ds = read_manifest(p, HAM10000_FORMAT, name="ham10000")
    elif p.suffix == ".npz":
        ds = read_medmnist(p)
    elif p.suffix.lower() in (".csv", ".json"):
        ds = read_manifest(p)
    elif p.is_dir():
        ds = read_folder(p)
    else:
        raise DataError(f"{p}: unsupported source (give a folder, a .csv/.json manifest or a .npz)")
    chosen = spec if spec is not None else default_spec
    return ds.with_spec(load_spec(chosen)) if chosen is not None else ds


def _read_rows(p: Path) -> list[dict[str, Any]]:
    if not p.is_file():
        raise DataError(f"manifest {p} does not exist")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            rows = data.get("examples") if isinstance(data, dict) else data
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise DataError(f"manifest {p}: expected a list of objects or {{'examples': [...]}}")
            return rows
        with p.open(newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DataError(f"manifest {p} cannot be parsed: {exc}") from None


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
