from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.console import progress_bar

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
