from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from carelens.data import (
    Dataset,
    load_splits,
    make_splits,
    near_duplicate_pairs,
    open_dataset,
    read_medmnist,
    scan_dataset,
    split_dataset,
)
from carelens.errors import ConfigError, DataError


def test_ham10000_group_split_never_leaks_a_lesion(ham: Dataset) -> None:
    s = make_splits(ham, seed=3)
    assert s.strategy == "group"
    where: dict[str, set[str]] = defaultdict(set)
    for e in ham:
        where[e.group].add(s.assignment[e.id])  # type: ignore[index]
    assert all(len(v) == 1 for v in where.values())
    counts = s.counts(ham)
    for c, n in ham.class_counts().items():  # stratified: every class near 70/10/20
        assert abs(counts["train"][c] / n - 0.7) < 0.05
        assert abs(counts["test"][c] / n - 0.2) < 0.05
        assert counts["val"][c] >= 5


def test_a_split_by_groups_reports_every_image_dealt_with(ham: Dataset) -> None:
    done: list[int] = []
    s = split_dataset(ham, seed=0, progress=done.append)  # the lesion ids place every image: nothing to read
    assert s.strategy == "group" and sum(done) == len(ham)  # a progress bar ends full, not at 0 of 8,512


def test_seed_reproducible_and_different(ham: Dataset) -> None:
    a, b, c = make_splits(ham, seed=1), make_splits(ham, seed=1), make_splits(ham, seed=2)
    assert a.assignment == b.assignment
    assert a.assignment != c.assignment


def test_near_duplicates_grouped_when_no_group_column(busi_dir: Path) -> None:
    ds = open_dataset(busi_dir, "busi")
    scan = scan_dataset(ds, workers=1)
    pairs = [(i, j) for i, j, _ in near_duplicate_pairs(scan.thumbs, 0.99)]
    assert len(pairs) > 50
    s = make_splits(ds, seed=0, near_duplicate_pairs=pairs)
    assert s.strategy == "near_duplicate_group"
    assert all(s.assignment[ds[i].id] == s.assignment[ds[j].id] for i, j in pairs)
    ids = {e.id: e for e in ds}
    # the pixel-identical cross-class pair from SOURCES.md stays in one split
    assert s.assignment["benign/benign (433).png"] == s.assignment["malignant/malignant (145).png"]
    assert set(ids) == set(s.assignment)


def test_official_split_is_kept(pneumonia_npz: Path) -> None:
    ds = read_medmnist(pneumonia_npz)
    s = make_splits(ds, seed=9)
    assert s.strategy == "official"
    assert sum(v == "val" for v in s.assignment.values()) == 524


def test_split_file_round_trip_and_stale_detection(tmp_path: Path, busi_dir: Path) -> None:
    ds = open_dataset(busi_dir, "busi")
    s = make_splits(ds, seed=0)
    path = s.save(tmp_path / "splits.json", ds)
    again = load_splits(path, ds)
    assert again.assignment == s.assignment and again.indices(ds, "test") == s.indices(ds, "test")
    binary = open_dataset(busi_dir, "busi_binary")  # same files, other labels
    with pytest.raises(DataError, match="different data"):
        load_splits(path, binary)


def test_bad_fractions() -> None:
    from carelens.data import Example

    ds = Dataset("t", [Example("a", "x", "x"), Example("b", "y", "y")], source="folder")
    with pytest.raises(ConfigError, match="sum"):
        make_splits(ds, (0.5, 0.5, 0.5))
