from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carelens.data import (
    Dataset,
    ManifestFormat,
    UnreadableImageWarning,
    open_dataset,
    read_folder,
    read_manifest,
    read_medmnist,
)
from carelens.errors import DataError


def _img(path: Path, value: int = 100, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_folder_source_nested_classes_and_formats(tmp_path: Path) -> None:
    for i, suffix in enumerate([".png", ".jpg", ".bmp", ".tiff", ".webp"]):
        _img(tmp_path / "skin" / "hot_spot" / f"a{i}{suffix}", i)
    _img(tmp_path / "ear" / "b.PNG", 9)
    (tmp_path / "ear" / "notes.txt").write_text("ignored")
    _img(tmp_path / "loose.png", 3)
    with pytest.warns(UserWarning, match="no class folder"):
        ds = read_folder(tmp_path)
    assert ds.class_counts() == {"ear": 1, "skin/hot_spot": 5}
    assert all(ds.load_image(i).shape == (30, 40, 3) for i in range(len(ds)))


def test_manifest_csv_and_json_keep_facts(tmp_path: Path) -> None:
    _img(tmp_path / "img" / "p1.png", 1)
    _img(tmp_path / "img" / "p2.png", 2)
    (tmp_path / "m.csv").write_text("path,label,group,age,site\nimg/p1.png,mel,pt1,61,back\nimg/p2.png,nv,pt2,,arm\n")
    ds = read_manifest(tmp_path / "m.csv")
    assert [e.label for e in ds] == ["mel", "nv"]
    assert ds[0].group == "pt1" and ds[0].facts == {"age": 61, "site": "back"}
    assert ds[1].facts["age"] is None  # missing stays explicit, never 0
    rows = [{"file": "p1", "dx": "mel", "animal": "rex", "weight_kg": 12.5}]
    (tmp_path / "m.json").write_text(json.dumps({"examples": rows}))
    ds2 = read_manifest(tmp_path / "m.json", ManifestFormat("file", "dx", "animal", "img/{}.png"))
    assert ds2[0].group == "rex" and ds2[0].facts == {"weight_kg": 12.5}
    assert ds2.load_image(0).shape == (30, 40, 3)


def test_manifest_split_and_symptoms_columns_are_not_facts(tmp_path: Path) -> None:
    _img(tmp_path / "p1.png", 1)
    _img(tmp_path / "p2.png", 2)
    (tmp_path / "m.csv").write_text("path,label,symptoms,split,age\np1.png,a,itching; hair_loss,train,3\np2.png,b,,test,4\n")
    ds = read_manifest(tmp_path / "m.csv")
    assert ds.has_official_split and [e.split for e in ds] == ["train", "test"]
    assert ds[0].symptoms == ("itching", "hair_loss") and ds[1].symptoms == () and ds[0].facts == {"age": 3}
    (tmp_path / "bad.csv").write_text("path,label,split\np1.png,a,training\n")
    with pytest.raises(DataError, match="split 'training' is not one of train, val, test"):
        read_manifest(tmp_path / "bad.csv")


def test_manifest_missing_column_says_which(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("file,diagnosis\na.png,x\n")
    with pytest.raises(DataError, match="no path column .path.; its columns are diagnosis, file") as e:
        read_manifest(tmp_path / "m.csv")
    assert "Rename the column that holds each image's path to 'path'" in str(e.value)  # no option that does not exist
    (tmp_path / "m.csv").write_text("path,diagnosis\na.png,x\n")
    with pytest.raises(DataError, match="no label column .label.; .* Rename the column that holds each image's label"):
        read_manifest(tmp_path / "m.csv")


def test_ham10000_manifest(ham: Dataset) -> None:
    assert len(ham) == 8512
    assert ham.class_counts() == {"akiec": 283, "bcc": 431, "bkl": 938, "df": 92, "mel": 942, "nv": 5706, "vasc": 120}
    e = ham[0]
    assert e.group is not None and e.group.startswith("HAM_")
    assert set(e.facts) == {"age", "sex", "localization"}  # dx_type leaks the label: excluded
    assert ham.load_image(0).shape == (150, 200, 3)


def test_medmnist_keeps_the_official_split(pneumonia_npz: Path) -> None:
    ds = read_medmnist(pneumonia_npz)
    counts = {s: sum(1 for e in ds if e.split == s) for s in ("train", "val", "test")}
    assert counts == {"train": 4708, "val": 524, "test": 624}
    assert set(ds.labels) == {"normal", "pneumonia"}
    assert ds.load_image(0).shape == (28, 28, 3) and ds.load_image(0, "L").shape == (28, 28)


def test_unreadable_files_are_skipped_with_a_warning_naming_them(tmp_path: Path) -> None:
    _img(tmp_path / "a" / "ok.png", 1)
    _img(tmp_path / "b" / "ok.png", 2)
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "b" / "text.jpg").write_text("hello")
    ds = read_folder(tmp_path)
    assert len(ds) == 4
    with pytest.warns(UnreadableImageWarning) as rec:
        loaded = [i for i, _ in ds.iter_images()]
    assert len(loaded) == 2
    named = " ".join(str(w.message) for w in rec)
    assert "empty.jpg" in named and "text.jpg" in named


def test_open_dataset_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        open_dataset(tmp_path / "empty")
