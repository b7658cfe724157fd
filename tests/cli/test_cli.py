from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app, main
from carelens.console import progress_bar
from carelens.data import open_dataset
from carelens.labels import load_spec

runner = CliRunner()


def test_audit_writes_json_and_a_table(busi_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    res = runner.invoke(app, ["audit", str(busi_dir), "--spec", "busi_binary", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert {c["id"]: c["count"] for c in rep["classes"]} == {"malignant": 210, "not_malignant": 570}
    assert "not_malignant" in res.output and "duplicates across classes" in res.output


def test_split_then_audit_checks_leakage(busi_dir: Path, tmp_path: Path) -> None:
    splits = tmp_path / "splits.json"
    res = runner.invoke(app, ["split", str(busi_dir), "--spec", "busi", "--out", str(splits), "--seed", "4"])
    assert res.exit_code == 0, res.output
    doc = json.loads(splits.read_text())
    assert doc["strategy"] == "near_duplicate_group" and len(doc["assignment"]) == 780
    out = tmp_path / "a.json"
    res = runner.invoke(app, ["audit", str(busi_dir), "--spec", "busi", "--splits", str(splits), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["split_leaks"] == []  # near-duplicates were grouped


def test_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    res = runner.invoke(app, ["audit", str(tmp_path / "nowhere")])
    assert res.exit_code == 1
    assert "DataError" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["split", str(tmp_path), "--fractions", "0.7,0.3"])
    assert res.exit_code == 1 and "ConfigError" in res.output
    # the file system's errors too: a file where a folder of --out belongs
    (tmp_path / "notes.txt").write_text("x")
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        (tmp_path / "imgs" / label / "1.png").write_bytes(b"")
    res = runner.invoke(app, ["specs", "--init", str(tmp_path / "imgs"), "--out", str(tmp_path / "notes.txt" / "s.yaml")])
    assert res.exit_code == 1 and "Traceback" not in res.output and "notes.txt" in res.output


def test_a_warning_reaches_the_cli_user_as_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["carelens", "version"])
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # put back after the test
    with pytest.raises(SystemExit):
        main()
    capsys.readouterr()
    message = "skipping data/[b]/x.png: not a recognised image format (is it really an image?)"
    warnings.warn_explicit(message, UserWarning, "/site-packages/carelens/train/_trainer.py", 294)
    # the path's brackets kept (not read as markup); no "file:line: UserWarning:" and no source line
    assert capsys.readouterr().err.strip() == f"! {message}"


def test_folders_named_freely_get_a_spec_to_edit_before_any_training(busi_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "scans"
    for source, folder in (("benign", "Benign"), ("malignant", "Malignant Tumour"), ("normal", "normal")):
        (data / folder).mkdir(parents=True)
        for f in sorted((busi_dir / source).iterdir())[:10]:
            (data / folder / f.name).symlink_to(f)
    res = runner.invoke(app, ["audit", str(data), "--out", str(tmp_path / "audit.json")])
    assert res.exit_code == 0, res.output
    said = json.loads((tmp_path / "audit.json").read_text())["warnings"]
    assert any("'Benign', 'Malignant Tumour' cannot be class ids" in w and "specs --init" in w for w in said)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(data), "--out", str(run), "--model", "small_cnn", "--image-size", "32"])
    assert res.exit_code == 1 and "LabelSpecError" in res.output and "Traceback" not in res.output
    assert "'Benign', 'Malignant Tumour' cannot be class ids" in res.output and "specs --init" in res.output
    assert not run.exists()  # refused before training (it used to fail at export, after it)
    spec = tmp_path / "specs" / "spec.yaml"  # its folder is made
    res = runner.invoke(app, ["specs", "--init", str(data), "--out", str(spec)])
    assert res.exit_code == 0, res.output
    assert spec.read_text().startswith("# Label spec for") and "severity: low | moderate | high | critical" in spec.read_text()
    ds = open_dataset(data, str(spec))
    assert ds.class_counts() == {"benign": 10, "malignant_tumour": 10, "normal": 10}
    assert {e.source_label for e in ds if e.label == "malignant_tumour"} == {"Malignant Tumour"}
    res = runner.invoke(app, ["specs", "--init", str(data), "--out", str(spec)])
    assert res.exit_code == 1 and "exists" in res.output  # an edited spec is never overwritten


def test_a_table_of_cases_gets_a_spec_to_edit_from_its_outcome_column(data_dir: Path, tmp_path: Path) -> None:
    columns = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,outcome"
    rows = (data_dir / "uci_heart_disease" / "processed.cleveland.data").read_text().split()
    table = tmp_path / "heart.csv"
    table.write_text("\n".join([columns, *(r.rsplit(",", 1)[0] + ",grade " + r.rsplit(",", 1)[1] for r in rows)]))
    res = runner.invoke(app, ["clinical", "build", str(table), "--out", str(tmp_path / "b"), "--label-column", "outcome"])
    assert res.exit_code == 1 and "specs --init" in res.output and "--label-column outcome" in res.output
    spec = tmp_path / "s.yaml"
    res = runner.invoke(app, ["specs", "--init", str(table), "--label-column", "outcome", "--out", str(spec)])
    assert res.exit_code == 0, res.output
    assert load_spec(spec).class_ids == ["grade_0", "grade_1", "grade_2", "grade_3", "grade_4"]
    res = runner.invoke(app, ["clinical", "build", str(table), "--out", str(tmp_path / "b"), "--label-column", "outcome",
                              "--spec", str(spec)])
    assert res.exit_code == 0, res.output  # the written spec maps every outcome in the table
    assert "has no critical class" in res.output  # an unedited template escalates nothing, and the build says so
    # evaluated on the very file it was built from: measured, and said to be optimistic
    res = runner.invoke(app, ["evaluate", str(tmp_path / "b"), str(table), "--label-column", "outcome", "--out",
                              str(tmp_path / "rep")])
    assert res.exit_code == 0 and "rows the bundle was built from" in res.output, res.output
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["warnings"]
    res = runner.invoke(app, ["specs", "--init", str(table), "--label-column", "label", "--out", str(tmp_path / "t.yaml")])
    assert res.exit_code == 1 and "no column 'label'" in res.output


def test_training_never_replaces_a_run_unasked(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    res = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and "already holds a training run: --resume continues it, --overwrite replaces it" in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--overwrite"])
    assert res.exit_code == 1 and "does not exist" in res.output  # past that check, to the data


def test_fetch_offline_from_local_folder(data_dir: Path) -> None:
    res = runner.invoke(app, ["data", "fetch", "medmnist", "pneumoniamnist", "--data-dir", str(data_dir), "--offline"])
    assert res.exit_code == 0, res.output
    result = json.loads(next(line for line in res.stdout.splitlines() if line.startswith("{")))
    assert result["counts"]["train"] == 4708 and result["official_md5"] is False


def test_a_phase_of_unknown_length_ends_as_finished_not_as_0_of_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("embedding", None):
        pass
    with progress_bar("predicting on Ray", None) as advance:
        for _ in range(5):
            advance(3)
    with progress_bar("training", 4) as advance:
        advance(4)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    last = {name: next(ln for ln in reversed(lines) if ln.startswith(name)) for name in ("embedding", "predicting", "training")}
    assert " done " in last["embedding"] and "0/?" not in last["embedding"]
    assert " 15 " in last["predicting"] and "done" not in last["predicting"]
    assert " 4/4 " in last["training"]
