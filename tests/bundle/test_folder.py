"""Where a bundle is written: never over a folder of other things, never half-written, the old one kept on failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.bundle import bundle_folder
from carelens.cli import app
from carelens.errors import ConfigError


def _bundle(folder: Path, version: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bundle.json").write_text(version)
    (folder / "model.onnx").write_text("weights " + version)


def test_a_new_bundle_replaces_the_old_only_once_complete(tmp_path: Path) -> None:
    out = tmp_path / "models" / "derma"
    _bundle(out, "1")
    with pytest.raises(RuntimeError, match="self-test failed"), bundle_folder(out) as building:
        _bundle(building, "2")
        assert (out / "bundle.json").read_text() == "1"  # still serving the old one while the new one is built
        raise RuntimeError("self-test failed")
    assert (out / "bundle.json").read_text() == "1" and sorted(p.name for p in (tmp_path / "models").iterdir()) == ["derma"]
    with bundle_folder(out) as building:
        _bundle(building, "2")
    assert (out / "bundle.json").read_text() == "2" and sorted(p.name for p in (tmp_path / "models").iterdir()) == ["derma"]
    with bundle_folder(tmp_path / "new" / "chest") as building:  # a folder that does not exist yet, nor its parent
        _bundle(building, "1")
    assert (tmp_path / "new" / "chest" / "bundle.json").is_file()


def test_a_folder_of_other_things_is_refused_not_emptied(tmp_path: Path, tiny_pneumonia_run: Path) -> None:
    models = tmp_path / "models"
    _bundle(models / "derma", "1")
    (models / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"models exists and is not a bundle folder \(it holds derma, notes.txt"), \
            bundle_folder(models):
        pass
    # as a user would type it: `--out models/` meaning "into models/" used to delete every bundle in it
    res = CliRunner().invoke(app, ["export", str(tiny_pneumonia_run), "--out", str(models)])
    assert res.exit_code == 1 and "is not a bundle folder" in res.output and "models/my_model" in res.output
    assert (models / "notes.txt").read_text() == "keep me" and (models / "derma" / "bundle.json").read_text() == "1"
    (tmp_path / "empty").mkdir()
    with bundle_folder(tmp_path / "empty") as building:  # an empty folder is fine
        _bundle(building, "1")
    assert (tmp_path / "empty" / "bundle.json").is_file()
