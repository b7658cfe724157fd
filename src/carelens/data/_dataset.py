"""One dataset abstraction for every source: a list of examples that know how to load their image."""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from carelens.data._image_io import ColorMode, read_image
from carelens.errors import DataError, ImageReadError, LabelSpecError
from carelens.labels import LabelSpec

__all__ = ["NO_FINDING", "Dataset", "Example", "UnreadableImageWarning", "findings_label"]


class UnreadableImageWarning(UserWarning):
    """An image was skipped because it could not be decoded; the message names the file."""


@dataclass(frozen=True)
class Example:
    """One labelled example.

    Attributes:
        id: stable identifier, unique in its dataset (relative path, image id, or ``split/index``).
        label: the class (after a label spec is applied) or the source label (before).
        source_label: the label as the source gave it (folder path, manifest value, label name).
        group: who or what the image belongs to (patient, lesion, animal); ``None`` if unknown.
        path: image file, for file-based sources.
        index: row in the dataset's in-memory array, for array sources (MedMNIST).
        split: the official split when the source defines one (MedMNIST), else ``None``.
        facts: clinical facts from the manifest (age, sex, site ...), kept for fusion.
        symptoms: what was reported for this case (symptom ids, a manifest's ``symptoms`` column split on
            ``;``), for fitting an image + symptom fusion; never a clinical fact.
        findings: multi-label examples only: condition -> severity level (``None`` when the grade is not
            known); empty for an image with no condition. ``label`` is then the sorted conditions joined by
            ``+`` (``none`` when empty), the stratum splits and audits count.
    """

    id: str
    label: str
    source_label: str
    group: str | None = None
    path: Path | None = None
    index: int | None = None
    split: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    findings: Mapping[str, str | None] | None = None
    symptoms: tuple[str, ...] = ()


NO_FINDING = "none"


def findings_label(findings: Mapping[str, str | None]) -> str:
    """The stratum of a multi-label example: its conditions, sorted, joined by ``+``."""
    return "+".join(sorted(findings)) or NO_FINDING


class Dataset(Sequence[Example]):
    """An ordered, immutable collection of :class:`Example` with image loading."""

    def __init__(
        self,
        name: str,
        examples: Iterable[Example],
        *,
        source: str,
        root: Path | None = None,
        images: np.ndarray | None = None,
        spec: LabelSpec | None = None,
        notes: Iterable[str] = (),
        excluded: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.source = source  # "folder" | "split_folders" | "manifest" | "medmnist"
        self.root = root
        self.images = images  # (N, H, W) or (N, H, W, 3) uint8 for array sources
        self.spec = spec
        self.notes = tuple(notes)  # what reading the source decided, in words (the audit repeats them)
        self.excluded = tuple(excluded)  # files left out on purpose (segmentation masks ...), relative paths
        self._examples = tuple(examples)
        ids = [e.id for e in self._examples]
        if len(set(ids)) != len(ids):
            dupes = [i for i, n in Counter(ids).items() if n > 1][:5]
            raise DataError(f"dataset {name!r} has repeated example ids, e.g. {dupes}")
        if not self._examples:
            raise DataError(f"dataset {name!r} ({root}) holds no examples")

    # -- sequence ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        return self._examples[i]

    def __iter__(self) -> Iterator[Example]:
        return iter(self._examples)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, source={self.source!r}, n={len(self)}, classes={len(self.class_counts())})"

    # -- views ---------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return [e.label for e in self._examples]

    @property
    def multilabel(self) -> bool:
        return any(e.findings is not None for e in self._examples)

    @property
    def has_groups(self) -> bool:
        return any(e.group is not None for e in self._examples)

    @property
    def has_official_split(self) -> bool:
        return all(e.split is not None for e in self._examples)

    def class_counts(self) -> dict[str, int]:
        """Examples per class (multi-label: images showing each condition)."""
        if self.multilabel:
            counts = Counter(c for e in self._examples for c in (e.findings or {}))
        else:
            counts = Counter(self.labels)
        if self.spec is not None:
            return {c: counts.get(c, 0) for c in self.spec.class_ids}
        return dict(sorted(counts.items()))

    def ids(self) -> list[str]:
        return [e.id for e in self._examples]

    def subset(self, indices: Iterable[int], name: str | None = None) -> Dataset:
        return Dataset(
            name or self.name,
            [self._examples[i] for i in indices],
            source=self.source,
            root=self.root,
            images=self.images,
            spec=self.spec,
            notes=self.notes,
            excluded=self.excluded,
        )

    def with_spec(self, spec: LabelSpec) -> Dataset:
        """Map source labels onto the spec's classes (merge rules, drops) and check the result.

        Raises:
            LabelSpecError: a source label the spec does not know, or a class with no examples.
        """
        if self.multilabel != spec.multilabel:
            raise LabelSpecError(f"spec {spec.name!r} is {spec.task} but dataset {self.name!r} is "
                                 f"{'multi-label' if self.multilabel else 'single-label'}; choose a matching spec")
        if spec.multilabel:
            kept = [self._map_findings(e, spec) for e in self._examples]
            spec.check_counts(Counter(c for e in kept for c in (e.findings or {})))
            return Dataset(self.name, kept, source=self.source, root=self.root, images=self.images, spec=spec,
                           notes=self.notes, excluded=self.excluded)
        mapped = spec.map_labels(e.source_label for e in self._examples)
        kept = [replace(e, label=m) for e, m in zip(self._examples, mapped, strict=True) if m is not None]
        spec.check_counts(Counter(e.label for e in kept))
        return Dataset(self.name, kept, source=self.source, root=self.root, images=self.images, spec=spec,
                       notes=self.notes, excluded=self.excluded)

    @staticmethod
    def _map_findings(e: Example, spec: LabelSpec) -> Example:
        """Condition names through the spec's merge/drop rules; severity levels checked against the spec."""
        out: dict[str, str | None] = {}
        for source, level in (e.findings or {}).items():
            cid = spec.map_label(source)
            if cid is None:
                continue
            c = spec.get(cid)
            if level is not None:
                if not c.severity_levels:
                    level = None  # the spec does not grade this condition
                else:
                    c.level_index(level)
            out[cid] = level if out.get(cid) is None else out[cid]
        return replace(e, findings=out, label=findings_label(out))

    def fingerprint(self) -> str:
        """sha256 of the manifest (id, label, group): identifies the exact data a model saw."""
        h = hashlib.sha256()
        for e in sorted(self._examples, key=lambda x: x.id):
            grades = "" if e.findings is None else "\t" + ",".join(f"{c}:{lv}" for c, lv in sorted(e.findings.items()))
            h.update(f"{e.id}\t{e.label}\t{e.group or ''}{grades}\n".encode())
        return h.hexdigest()

    # -- images --------------------------------------------------------------------------------
    def load_image(self, i: int, mode: ColorMode = "RGB") -> np.ndarray:
        """The image of example ``i`` as uint8 RGB (H, W, 3) or L (H, W).

        Raises:
            ImageReadError: the file cannot be decoded.
        """
        e = self._examples[i]
        if e.index is not None and self.images is not None:
            a = self.images[e.index]
            a = np.asarray(a, dtype=np.uint8)
            if a.ndim == 2:
                return a if mode == "L" else np.repeat(a[:, :, None], 3, axis=2)
            if mode == "L":
                return np.asarray(np.round(a @ np.array([0.299, 0.587, 0.114])), dtype=np.uint8)
            return a
        if e.path is None:
            raise ImageReadError(e.id, "example has neither a file nor an array row")
        return read_image(e.path, mode)

    def iter_images(
        self, indices: Iterable[int] | None = None, mode: ColorMode = "RGB"
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(i, image)``; unreadable files are skipped with a warning naming the file."""
        for i in range(len(self)) if indices is None else indices:
            try:
                yield i, self.load_image(i, mode)
            except ImageReadError as exc:
                warnings.warn(f"skipping {exc.path}: {exc.reason}", UnreadableImageWarning, stacklevel=2)
