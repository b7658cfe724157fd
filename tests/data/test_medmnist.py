from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carelens.data import _medmnist, fetch_medmnist, md5sum
from carelens.errors import ChecksumError, ConfigError, DataError


def _fake_npz(path: Path) -> Path:
    arrays = {}
    for s, n in (("train", 4), ("val", 2), ("test", 2)):
        arrays[f"{s}_images"] = np.zeros((n, 28, 28), np.uint8)
        arrays[f"{s}_labels"] = np.zeros((n, 1), np.uint8)
    np.savez(path, **arrays)
    return path


def test_download_with_wrong_md5_is_refused_and_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = tmp_path / "server"
    server.mkdir()
    _fake_npz(server / "pneumoniamnist.npz")  # stands in for a corrupted download
    monkeypatch.setattr(_medmnist, "_ZENODO", server.as_uri() + "/{file}")
    out = tmp_path / "downloads"
    with pytest.raises(ChecksumError, match="does not match the official 28209eda"):
        fetch_medmnist("pneumoniamnist", 28, download_dir=out)
    assert list(out.iterdir()) == []  # nothing half-trusted is left behind


def test_download_with_right_md5_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = tmp_path / "server"
    server.mkdir()
    fake = _fake_npz(server / "pneumoniamnist.npz")
    info = _medmnist.MEDMNIST["pneumoniamnist"]
    patched = _medmnist.MedMNISTInfo(info.labels, {**info.md5, 28: md5sum(fake)}, info.n_samples)
    monkeypatch.setitem(_medmnist.MEDMNIST, "pneumoniamnist", patched)
    monkeypatch.setattr(_medmnist, "_ZENODO", server.as_uri() + "/{file}")
    got = fetch_medmnist("pneumoniamnist", 28, download_dir=tmp_path / "dl")
    assert got == tmp_path / "dl" / "pneumoniamnist.npz" and md5sum(got) == md5sum(fake)


def test_offline_reads_the_local_folder(data_dir: Path) -> None:
    p = fetch_medmnist("pneumoniamnist", 28, data_dir=data_dir, offline=True)
    assert p.suffix == ".npz" and p.parent.name == "pneumoniamnist"
    with pytest.raises(DataError, match="not found"):
        fetch_medmnist("pneumoniamnist", 224, data_dir=data_dir, offline=True)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown MedMNIST set"):
        fetch_medmnist("catmnist")
    with pytest.raises(ConfigError, match="--size"):
        fetch_medmnist("pneumoniamnist", 100)
