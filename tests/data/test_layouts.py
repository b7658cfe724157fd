"""The layouts seed projects actually download, built here as small fixtures: read right, never silently wrong."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from carelens.data import audit_dataset, make_splits, open_dataset


def _img(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)


def test_ham10000_kaggle_layout_finds_images_in_both_part_folders(tmp_path: Path) -> None:
    root = tmp_path / "ham"
    rows = []
    for k in range(12):
        image_id = f"ISIC_{k:07d}"
        _img(root / f"HAM10000_images_part_{1 + k % 2}" / f"{image_id}.jpg", k)
        rows.append({"lesion_id": f"HAM_{k // 2:07d}", "image_id": image_id, "dx": ["nv", "mel", "bkl"][k % 3],
                     "dx_type": "histo", "age": 40 + k, "sex": "male", "localization": "back"})
    with (root / "HAM10000_metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ds = open_dataset(root)
    assert len(ds) == 12 and all(e.path is not None and e.path.is_file() for e in ds)
    assert {e.path.parent.name for e in ds} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}  # type: ignore[union-attr]
    assert ds[0].group == "HAM_0000000" and "dx_type" not in ds[0].facts
    assert audit_dataset(ds, workers=1).n_readable == 12  # every file readable, none "unreadable"


def test_kaggle_chest_xray_layout_keeps_test_patients_and_merges_the_tiny_val(tmp_path: Path) -> None:
    root = tmp_path / "chest_xray"
    n = 0
    for split, patients in (("train", range(20)), ("val", range(20, 22)), ("test", range(22, 30))):
        for p in patients:
            for k in range(2):  # two images per patient
                _img(root / split / "PNEUMONIA" / f"person{p}_bacteria_{k}.jpeg", n)
                _img(root / split / "NORMAL" / f"IM-{p:04d}-000{k}.jpeg", n + 1)
                n += 2
    ds = open_dataset(root)
    assert ds.source == "split_folders" and sorted(ds.class_counts()) == ["NORMAL", "PNEUMONIA"]  # 2 classes, not 6
    assert {e.split for e in ds} == {"train", "test"}
    person = next(e for e in ds if e.id == "train/PNEUMONIA/person3_bacteria_1.jpeg")
    assert person.group == "person3" and next(e for e in ds if e.id.endswith("IM-0003-0001.jpeg")).group == "IM-0003"
    assert any("val/ folder (8 images) is merged into train" in note for note in ds.notes)
    splits = make_splits(ds)
    assert splits.strategy == "official_test+group_val"
    for e in ds:
        s = splits.assignment[e.id]
        assert (s == "test") == e.id.startswith("test/")  # the official test split is kept as it is
    val = {e.group for e in ds if splits.assignment[e.id] == "val"}
    train = {e.group for e in ds if splits.assignment[e.id] == "train"}
    assert val and not val & train  # a patient is in validation or in training, never both
    report = audit_dataset(ds, splits=splits, workers=1)
    assert any("merged into train" in w for w in report.warnings)


def test_segmentation_masks_are_left_out_and_named(tmp_path: Path) -> None:
    root = tmp_path / "busi"
    for cls in ("benign", "malignant"):
        for k in range(3):
            _img(root / cls / f"{cls} ({k}).png", k)
            _img(root / cls / f"{cls} ({k})_mask.png", 100 + k)
        _img(root / cls / f"{cls} (0)_mask_1.png", 200)
    ds = open_dataset(root)
    assert ds.class_counts() == {"benign": 3, "malignant": 3}  # 3 images each, not 3 images + 4 masks
    report = audit_dataset(ds, workers=1)
    assert len(report.excluded_files) == 8 and "benign/benign (0)_mask.png" in report.excluded_files
    assert any("segmentation mask(s)" in w for w in report.warnings)


def test_plain_class_folders_are_not_mistaken_for_split_folders(tmp_path: Path) -> None:
    for cls in ("train_station", "test_tube"):  # names that merely start like split folders
        for k in range(2):
            _img(tmp_path / "d" / cls / f"{k}.png", k)
    ds = open_dataset(tmp_path / "d")
    assert ds.source == "folder" and {e.split for e in ds} == {None}
