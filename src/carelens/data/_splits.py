"""Stratified, group-aware, seeded train/val/test splits, saved to a file every later stage reads.

No group crosses splits. Groups come from the data's group column (patient, lesion, animal); where
the data has none, near-duplicate images are joined into one group first (BUSI holds several frames
of one lesion). Official splits (MedMNIST) are kept as they are.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carelens.data._dataset import Dataset
from carelens.data._scan import near_duplicate_pairs, scan_dataset
from carelens.errors import ConfigError, DataError
from carelens.hashing import canonical_digest

__all__ = [
    "SPLIT_NAMES",
    "Splits",
    "groups_from_pairs",
    "load_run_splits",
    "load_splits",
    "make_folds",
    "make_splits",
    "read_split_document",
    "split_dataset",
]

SPLIT_NAMES = ("train", "val", "test")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Splits:
    """Which split each example id belongs to, and how the split was made."""

    assignment: dict[str, str]  # example id -> "train" | "val" | "test"
    strategy: str  # "official" | "group" | "near_duplicate_group" | "example"
    seed: int
    fractions: tuple[float, float, float]
    fingerprint: str  # Dataset.fingerprint() of the data it was made for

    def indices(self, ds: Dataset, split: str) -> list[int]:
        """Positions in ``ds`` of the examples in ``split``."""
        if split not in SPLIT_NAMES:
            raise ConfigError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
        return [i for i, e in enumerate(ds) if self.assignment.get(e.id) == split]

    def counts(self, ds: Dataset) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {s: Counter() for s in SPLIT_NAMES}
        for e in ds:
            s = self.assignment.get(e.id)
            if s is not None:
                out[s][e.label] += 1
        return {s: dict(sorted(c.items())) for s, c in out.items()}

    def assignment_digest(self) -> str:
        """sha256 of the assignment: equal digests, identical splits (a bundle records it)."""
        return canonical_digest(self.assignment)

    def to_dict(self, ds: Dataset | None = None) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "strategy": self.strategy,
            "seed": self.seed,
            "fractions": list(self.fractions),
            "fingerprint": self.fingerprint,
            "counts": self.counts(ds) if ds is not None else None,
            "assignment": self.assignment,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any], origin: str = "split file") -> Splits:
        if doc.get("format") != FORMAT_VERSION:
            raise DataError(f"{origin} has format {doc.get('format')!r}; this carelens reads {FORMAT_VERSION}")
        return cls(
            assignment=dict(doc["assignment"]),
            strategy=str(doc["strategy"]),
            seed=int(doc["seed"]),
            fractions=tuple(doc["fractions"]),
            fingerprint=str(doc["fingerprint"]),
        )

    def save(self, path: str | Path, ds: Dataset | None = None) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(ds), indent=1, sort_keys=False), encoding="utf-8")
        return p

    def check(self, ds: Dataset, origin: str = "the split file") -> None:
        """Refuse data this split was not made for (examples it does not cover, or changed labels/groups)."""
        missing = [e.id for e in ds if e.id not in self.assignment]
        if missing:
            raise DataError(
                f"{origin} does not cover {len(missing)} example(s) of {ds.name!r} "
                f"(e.g. {missing[0]}); the data changed since it was made. Re-run `carelens split`."
            )
        if self.fingerprint != ds.fingerprint():
            raise DataError(
                f"{origin} was made for different data (labels or groups changed). "
                "Re-run `carelens split` so no example moves between splits unnoticed."
            )

    def covered(self, ds: Dataset, origin: str = "the split file") -> Dataset:
        """The part of ``ds`` this split assigns (a run may train on a subset), checked."""
        sub = ds.subset([i for i, e in enumerate(ds) if e.id in self.assignment])
        self.check(sub, origin)
        return sub


def read_split_document(path: str | Path) -> dict[str, Any]:
    """The JSON document of a split file (DataError when it cannot be read)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"split file {p} cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"split file {p} is not a JSON object")
    return doc


def load_splits(path: str | Path, ds: Dataset | None = None) -> Splits:
    """Read a split file; with ``ds``, check that it was made for exactly this data.

    Raises:
        DataError: unreadable file, other format version, or a dataset it does not cover.
    """
    splits = Splits.from_dict(read_split_document(path), f"split file {path}")
    if ds is not None:
        splits.check(ds, f"split file {path}")
    return splits


def load_run_splits(path: str | Path, ds: Dataset) -> tuple[Dataset, Splits]:
    """A run's split file with the part of ``ds`` it covers (a run may train on a subset), checked."""
    splits = load_splits(path)
    return splits.covered(ds, f"split file {path}"), splits


def groups_from_pairs(n: int, pairs: Sequence[tuple[int, int]], base: Sequence[str | None] | None = None) -> list[str]:
    """Connected components over ``pairs`` (union-find), optionally joined with existing groups."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    if base is not None:
        first: dict[str, int] = {}
        for i, g in enumerate(base):
            if g is not None:
                union(i, first.setdefault(g, i))
    for a, b in pairs:
        union(a, b)
    return [f"g{find(i)}" for i in range(n)]


def make_splits(
    ds: Dataset,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    *,
    near_duplicate_pairs: Sequence[tuple[int, int]] | None = None,
) -> Splits:
    """Split ``ds`` into train/val/test.

    Args:
        ds: the dataset (labels already mapped by its spec, if any).
        fractions: train, val, test shares; must be positive and sum to 1.
        seed: makes the split reproducible.
        near_duplicate_pairs: index pairs to keep together; used when ``ds`` has no groups.

    Returns:
        The assignment. Official splits are returned unchanged; an official train/test split without a
        validation split (a too-small ``val/`` merged into train) gets one taken from train, grouped.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"fractions must be three positive shares summing to 1, got {fractions}")
    fp = ds.fingerprint()
    groups, strategy = _groups(ds, near_duplicate_pairs)
    rng = np.random.default_rng(seed)
    if ds.has_official_split:
        official = {e.id: str(e.split) for e in ds}
        if "val" in official.values():
            return Splits(official, "official", seed, fractions, fp)
        # official train/test only (a too-small val/ merged into train): validation is taken from train, grouped
        train = [i for i, e in enumerate(ds) if e.split == "train"]
        share = fractions[1] / (fractions[0] + fractions[1])
        carved = _assign(ds, train, groups, np.asarray([1 - share, share, 0.0]), rng)
        return Splits({**official, **carved}, f"official_test+{strategy}_val", seed, fractions, fp)
    return Splits(_assign(ds, range(len(ds)), groups, np.asarray(fractions), rng), strategy, seed, fractions, fp)


def _groups(ds: Dataset, near_duplicate_pairs: Sequence[tuple[int, int]] | None) -> tuple[list[str], str]:
    """A group per example (never split apart), and how they were found."""
    if ds.has_groups:
        return groups_from_pairs(len(ds), [], [e.group if e.group is not None else f"id:{e.id}" for e in ds]), "group"
    if near_duplicate_pairs:
        return groups_from_pairs(len(ds), near_duplicate_pairs), "near_duplicate_group"
    return [e.id for e in ds], "example"


def _assign(ds: Dataset, indices: Iterable[int], groups: list[str], target: np.ndarray,
            rng: np.random.Generator) -> dict[str, str]:
    """Stratified assignment of whole groups to train/val/test in the ``target`` shares."""
    members: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        members[groups[i]].append(i)
    if ds.multilabel:
        return _assign_multilabel(ds, members, target, rng)
    # A group's stratum is its most common label (ties: alphabetical); groups spanning classes are
    # rare and reported by the audit.
    by_class: dict[str, list[str]] = defaultdict(list)
    for g, idx in members.items():
        label = min(Counter(ds[i].label for i in idx).items(), key=lambda t: (-t[1], t[0]))[0]
        by_class[label].append(g)
    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        glist = sorted(by_class[label])
        glist = [glist[k] for k in rng.permutation(len(glist))]
        glist.sort(key=lambda g: -len(members[g]))  # big groups first, random among equals
        total = sum(len(members[g]) for g in glist)
        have = np.zeros(3)
        for g in glist:
            # put the group where the split is furthest below its share of this class
            k = int(np.argmax(target * total - have))
            have[k] += len(members[g])
            for i in members[g]:
                assignment[ds[i].id] = SPLIT_NAMES[k]
    return assignment


def _group_strata(ds: Dataset, members: dict[str, list[int]]) -> tuple[list[str], np.ndarray]:
    """(group names, a 0/1 matrix of the strata each group holds: conditions, condition:severity, none)."""
    names = sorted(members)
    columns = sorted({col for idx in members.values() for i in idx for col in _strata(ds, i)})
    where = {c: j for j, c in enumerate(columns)}
    y = np.zeros((len(names), len(columns)), dtype=np.int64)
    for g, name in enumerate(names):
        for i in members[name]:
            for col in _strata(ds, i):
                y[g, where[col]] = 1
    return names, y


def _assign_multilabel(ds: Dataset, members: dict[str, list[int]], target: np.ndarray,
                       rng: np.random.Generator) -> dict[str, str]:
    """Iterative stratification (Sechidis et al. 2011, the ``iterative-stratification`` package) of whole
    groups on their conditions, each condition's severity levels and "no finding": every split gets its share
    of each label and of each (condition, severity) cell, as far as the group sizes allow."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    names, y = _group_strata(ds, members)
    out = np.full(len(names), 0)
    rest = np.arange(len(names))
    for k in (2, 1):  # carve test off, then val from what is left
        share = float(target[k] / target[: k + 1].sum())
        if share <= 0 or len(rest) < 2:
            continue
        mss = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=share, random_state=int(rng.integers(2**31)))
        keep, taken = next(mss.split(np.zeros(len(rest)), y[rest]))
        out[rest[taken]] = k
        rest = rest[keep]
    return {ds[i].id: SPLIT_NAMES[int(out[g])] for g, name in enumerate(names) for i in members[name]}


def _strata(ds: Dataset, i: int) -> list[str]:
    findings = ds[i].findings or {}
    if not findings:
        return ["<none>"]
    return [c for c in findings] + [f"{c}:{lv}" for c, lv in findings.items() if lv is not None]


def make_folds(ds: Dataset, k: int = 5, seed: int = 0, *, val_share: float = 0.1,
               near_duplicate_pairs: Sequence[tuple[int, int]] | None = None) -> list[Splits]:
    """K-fold cross-validation for small sets: fold ``i`` is the test split of ``Splits`` i; validation is carved
    (grouped, stratified) from the other folds. Whole groups stay in one fold; folds are stratified on the label
    (multi-label: iterative stratification on conditions and severities)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
    from sklearn.model_selection import StratifiedKFold

    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {k}")
    if not 0 < val_share < 0.5:
        raise ConfigError(f"val_share must be in (0, 0.5), got {val_share}")
    groups, strategy = _groups(ds, near_duplicate_pairs)
    members: dict[str, list[int]] = defaultdict(list)
    for i in range(len(ds)):
        members[groups[i]].append(i)
    if len(members) < k:
        raise ConfigError(f"{len(members)} groups cannot fill {k} folds; use fewer folds")
    rng = np.random.default_rng(seed)
    if ds.multilabel:
        names, y = _group_strata(ds, members)
        folds = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(names)), y)
    else:
        names = sorted(members)
        strata = [min(Counter(ds[i].label for i in members[g]).items(), key=lambda t: (-t[1], t[0]))[0] for g in names]
        smallest = min(Counter(strata).values())
        if smallest < k:
            raise ConfigError(f"a class has only {smallest} group(s), fewer than the {k} folds; use fewer folds")
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(names)), strata)
    fp = ds.fingerprint()
    out = []
    for n, (_, test_groups) in enumerate(folds):
        test_set = {names[g] for g in test_groups}
        rest = [i for i in range(len(ds)) if groups[i] not in test_set]
        assignment = _assign(ds, rest, groups, np.asarray([1 - val_share, val_share, 0.0]), rng)
        assignment.update({ds[i].id: "test" for i in range(len(ds)) if groups[i] in test_set})
        out.append(Splits(assignment, f"{strategy}_fold{n + 1}of{k}", seed, (1 - 1 / k - val_share, val_share, 1 / k), fp))
    return out


def split_dataset(
    ds: Dataset,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    *,
    near_threshold: float = 0.99,
    progress: Callable[[int], None] | None = None,
) -> Splits:
    """:func:`make_splits`, first reading the images to group near-duplicates when the data has no groups.
    ``progress(n)``: n images dealt with (read for the grouping, or all at once when the data's own groups or split
    make reading them unnecessary)."""
    pairs = None
    if not ds.has_groups and not ds.has_official_split:
        thumbs = scan_dataset(ds, progress=progress).thumbs
        pairs = [(a, b) for a, b, _ in near_duplicate_pairs(thumbs, near_threshold)]
    splits = make_splits(ds, fractions, seed, near_duplicate_pairs=pairs)
    if pairs is None and progress is not None:
        progress(len(ds))  # nothing to read: every image is placed by its group (or the official split)
    return splits
