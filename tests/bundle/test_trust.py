"""Bundles are trusted only as far as they prove: listed files, signatures by trusted keys, bounded zips."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.bundle import SIGNATURE_FILE, generate_keys, load_bundle, load_trusted_keys, sign_bundle
from carelens.cli import app
from carelens.errors import BundleError, ConfigError


@pytest.fixture(scope="module")
def bundle_dir(tiny_pneumonia_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from carelens.steps import calibrate_run
    from carelens.steps.export import export_run

    calibrate_run(tiny_pneumonia_run)
    return export_run(tiny_pneumonia_run, tmp_path_factory.mktemp("trust") / "chest", name="chest", version="1")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_files_the_manifest_does_not_list_are_refused(bundle_dir: Path, tmp_path: Path) -> None:
    c = _copy(bundle_dir, tmp_path / "b")
    (c / "extra.onnx").write_bytes(b"\0")  # e.g. external weights an attacker wants loaded
    with pytest.raises(BundleError, match=r"holds files that bundle.json does not list \(extra.onnx\)"):
        load_bundle(c)
    (c / "extra.onnx").unlink()
    (c / ".DS_Store").write_bytes(b"\0")  # hidden files of the operating system are ignored
    assert load_bundle(c).name == "chest"


def test_signed_bundles_load_only_with_a_trusted_key(bundle_dir: Path, tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path / "keys")
    assert private.stat().st_mode & 0o777 == 0o600 and public.read_text().startswith("-----BEGIN PUBLIC KEY")
    with pytest.raises(ConfigError, match="never overwritten"):
        generate_keys(tmp_path / "keys")
    other_private, _ = generate_keys(tmp_path / "other")
    trusted = load_trusted_keys(tmp_path / "keys")

    unsigned = _copy(bundle_dir, tmp_path / "unsigned")
    assert load_bundle(unsigned).signed_by is None  # no keys configured: signatures are not required
    with pytest.raises(BundleError, match="not signed"):
        load_bundle(unsigned, trusted_keys=trusted)

    signed = _copy(bundle_dir, tmp_path / "signed")
    sign_bundle(signed, private)
    assert load_bundle(signed, trusted_keys=trusted).signed_by == next(iter(trusted))

    foreign = _copy(bundle_dir, tmp_path / "foreign")
    sign_bundle(foreign, other_private)
    with pytest.raises(BundleError, match="does not trust"):
        load_bundle(foreign, trusted_keys=trusted)

    # tampering: a consistent bundle.json (integrity recomputed) still fails the signature
    from carelens.hashing import canonical_digest

    doc = json.loads((signed / "bundle.json").read_text())
    doc["temperature"] = 0.5
    doc["integrity"] = canonical_digest({k: v for k, v in doc.items() if k != "integrity"})
    (signed / "bundle.json").write_text(json.dumps(doc))
    load_bundle(signed)  # the unkeyed digest cannot tell ...
    with pytest.raises(BundleError, match="altered after signing"):
        load_bundle(signed, trusted_keys=trusted)  # ... the signature can


def test_export_signs_and_serve_keys_folder_must_hold_keys(bundle_dir: Path, tiny_pneumonia_run: Path,
                                                          tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["keys", "generate", "--out", str(tmp_path / "k")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "bundle"
    res = CliRunner().invoke(app, ["export", str(tiny_pneumonia_run), "--out", str(out), "--name", "chest",
                                   "--sign", str(tmp_path / "k" / "private.pem"), "--zip"])
    assert res.exit_code == 0, res.output
    assert (out / SIGNATURE_FILE).is_file()
    keys = load_trusted_keys(tmp_path / "k")
    b = load_bundle(tmp_path / "bundle.zip", trusted_keys=keys)  # the signature travels in the zip
    assert b.signed_by in keys
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no Ed25519 public key"):
        load_trusted_keys(tmp_path / "empty")


def test_zip_bundles_are_bounded_and_cleaned_up(bundle_dir: Path, tmp_path: Path) -> None:
    archive = Path(shutil.make_archive(str(tmp_path / "chest"), "zip", root_dir=bundle_dir))
    b = load_bundle(archive)
    extracted = b.extracted
    assert extracted is not None and (extracted / "bundle.json").is_file()
    b.close()
    assert not extracted.exists()
    assert b.extracted is None
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        for k in range(40):
            z.writestr(f"f{k}.txt", "x")
    with pytest.raises(BundleError, match="holds 40 entries"):
        load_bundle(many)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bundle.json", "{}")
        z.writestr("model.onnx", b"\0" * (50 << 20))  # 50 MiB of zeros compress about a thousandfold
    with pytest.raises(BundleError, match="zip bomb"):
        load_bundle(bomb)
    import tempfile

    leftovers = [p for p in Path(tempfile.gettempdir()).glob("carelens-bundle-*") if (p / "model.onnx").exists()
                 and (p / "model.onnx").stat().st_size == 50 << 20]
    assert not leftovers  # a refused zip leaves nothing behind
