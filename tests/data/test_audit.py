from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carelens.data import Dataset, audit_dataset, make_splits, open_dataset, read_folder, read_medmnist
from carelens.labels import load_spec


def _noise(path: Path, seed: int, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)


def test_audit_reports_bad_files_and_never_crashes(tmp_path: Path) -> None:
    for k in range(3):
        _noise(tmp_path / "a" / f"{k}.png", k)
        _noise(tmp_path / "b" / f"{k}.png", 10 + k)
    _noise(tmp_path / "b" / "copy.png", 0)  # exact copy of a/0.png under another class
    _noise(tmp_path / "a" / "tiny.png", 99, size=8)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, "JPEG")
    (tmp_path / "a" / "truncated.jpg").write_bytes(buf.getvalue()[:200])
    (tmp_path / "a" / "zero.jpg").write_bytes(b"")
    (tmp_path / "b" / "text.jpg").write_text("not an image")
    rep = audit_dataset(read_folder(tmp_path), min_per_class=5, workers=1)
    bad = {Path(u["path"]).name: u["error"] for u in rep.unreadable}
    assert set(bad) == {"truncated.jpg", "zero.jpg", "text.jpg"}
    assert "truncated" in bad["truncated.jpg"] and "empty" in bad["zero.jpg"]
    assert rep.n_examples == 11 and rep.n_readable == 8
    assert [t["id"] for t in rep.tiny_images] == ["a/tiny.png"]
    assert rep.exact_duplicates == [["a/0.png", "b/copy.png"]]
    assert rep.cross_class_duplicates[0]["labels"] == ["a", "b"]
    assert {c.id: c.too_few_to_validate for c in rep.classes} == {"a": True, "b": True}
    # every column of the class table counts readable files only: a folder class's groups are its readable files
    assert {c.id: (c.count, c.readable, c.groups) for c in rep.classes} == {"a": (6, 4, 4), "b": (5, 4, 4)}
    assert any("cannot be read" in w for w in rep.warnings)
    json.loads(json.dumps(rep.to_dict()))  # serialisable


def test_ham10000_audit_finds_known_problems_fast(ham: Dataset, tmp_path: Path) -> None:
    t = time.perf_counter()
    s = make_splits(ham, seed=0)
    rep = audit_dataset(ham, splits=s)
    assert time.perf_counter() - t < 60
    assert rep.n_readable == 8512
    exact = {frozenset(x) for x in rep.exact_duplicates}
    assert frozenset({"ISIC_0024366", "ISIC_0029861"}) in exact
    cross = {frozenset((p["a"], p["b"])) for p in rep.cross_group_duplicates}
    assert frozenset({"ISIC_0025226", "ISIC_0030074"}) in cross  # one lesion under two lesion_ids
    df = next(c for c in rep.classes if c.id == "df")
    assert df.too_few_to_validate and df.deficit > 0
    assert rep.imbalance_ratio == pytest.approx(5706 / 92, rel=1e-3)
    # the lesion-grouped split only leaks through that one mis-grouped pair, if at all
    assert all(frozenset((p["a"], p["b"])) in cross for p in rep.split_leaks)


def test_busi_cross_class_duplicates(busi_dir: Path) -> None:
    rep = audit_dataset(open_dataset(busi_dir, "busi"))
    pairs = {frozenset((p["a"], p["b"])) for p in rep.cross_class_duplicates}
    assert frozenset({"benign/benign (433).png", "malignant/malignant (145).png"}) in pairs
    assert len(rep.near_duplicates) > 100


def test_pneumoniamnist_train_val_leak_is_found(pneumonia_npz: Path) -> None:
    rep = audit_dataset(read_medmnist(pneumonia_npz).with_spec(load_spec("pneumoniamnist")))
    assert rep.split_strategy == "official"
    train_val = {
        frozenset((p["a"], p["b"])) for p in rep.split_leaks if sorted(p["splits"]) == ["train", "val"]
    }
    # SOURCES.md: 8 images appear in both train and val (exact hashes)
    leaked_val_images = {i for pair in train_val for i in pair if i.startswith("val/")}
    assert len(leaked_val_images) == 8
