"""`carelens data fetch kaggle`: a local copy is used as is, a fetched copy is verified against the checksums it
recorded, and without a token nothing is downloaded and the error says where to put one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.data import fetch_kaggle, kaggle_credentials
from carelens.errors import ChecksumError, ConfigError, DataError


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))


def test_local_copy_first_then_checked_fetch_then_a_clear_error(data_dir: Path, tmp_path: Path, no_token: None) -> None:
    assert kaggle_credentials() is None
    # the HAM10000 folder under CARELENS_DATA is the Kaggle set's data: used as is, nothing downloaded
    assert fetch_kaggle("ham10000", tmp_path / "dl", data_dir=data_dir) == data_dir / "ham10000"
    r = CliRunner().invoke(app, ["data", "fetch", "kaggle", "ham10000", "--out", str(tmp_path / "dl"),
                                 "--data-dir", str(data_dir)])
    assert r.exit_code == 0 and json.loads(r.stdout.splitlines()[-1])["path"] == str(data_dir / "ham10000")
    # no token: said before any download, with where to get one
    with pytest.raises(ConfigError, match=r"kaggle.json.*KAGGLE_USERNAME"):
        fetch_kaggle("owner/some-set", tmp_path / "dl")
    with pytest.raises(ConfigError, match="OWNER/DATASET"):
        fetch_kaggle("not a slug", tmp_path / "dl")
    with pytest.raises(DataError, match="--offline"):
        fetch_kaggle("owner/some-set", tmp_path / "dl", offline=True)
    # an earlier fetch (files + the checksums it recorded) is verified, not downloaded again; a changed file is said
    prior = tmp_path / "dl" / "some-set"
    (prior / "images").mkdir(parents=True)
    (prior / "images" / "a.jpg").write_bytes(b"\xff\xd8 one")
    (prior / "labels.csv").write_text("image,label\na,nv\n")
    from carelens.hashing import file_digest

    (prior / "SHA256SUMS.txt").write_text("".join(f"{file_digest(prior / n)}  {n}\n" for n in ("images/a.jpg", "labels.csv")))
    assert fetch_kaggle("owner/some-set", tmp_path / "dl") == prior
    (prior / "labels.csv").write_text("image,label\na,mel\n")
    with pytest.raises(ChecksumError, match="labels.csv changed"):
        fetch_kaggle("owner/some-set", tmp_path / "dl")
