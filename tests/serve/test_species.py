"""Species: a model of another species than the request's is never used; the refusal names what exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from carelens.bundle import DecisionParams
from carelens.cli import app
from carelens.hashing import canonical_digest
from carelens.serve import ServeSettings, create_app


def _as_species(src: Path, dst: Path, species: list[str]) -> Path:
    """A copy of a bundle whose label spec is for ``species`` (re-sealed as a re-export would seal it)."""
    shutil.copytree(src, dst)
    doc = json.loads((dst / "bundle.json").read_text())
    doc["label_spec"]["species"] = species
    doc["name"] = dst.name
    doc["integrity"] = canonical_digest({k: v for k, v in doc.items() if k != "integrity"})
    (dst / "bundle.json").write_text(json.dumps(doc))
    return dst


def test_requests_are_answered_only_by_models_of_their_species(serve_dirs: dict[str, Path], tmp_path: Path,
                                                               xray_png: bytes) -> None:
    models = tmp_path / "models"
    shutil.copytree(serve_dirs["models"] / "chest", models / "chest")
    _as_species(serve_dirs["models"] / "chest", models / "dogchest", ["dog"])
    s = ServeSettings(models_dir=models, symptoms_dir=serve_dirs["symptoms"], database_url=f"sqlite:///{tmp_path / 'a.db'}")
    files = {"file": ("x.png", xray_png, "image/png")}
    with TestClient(create_app(s)) as c:
        info = {m["name"]: m for m in c.get("/v1/models").json()}
        assert info["dogchest"]["species"] == ["dog"] and info["dogchest"]["care_provider"] == "veterinarian"
        assert info["chest"]["species"] == ["human"] and info["chest"]["care_provider"] == "doctor"
        r = c.post("/v1/models/dogchest/predict?species=human", files=files)
        assert r.status_code == 422 and r.json()["error"]["type"] == "wrong_species"
        assert "is for dog, not human; models for human: chest" in r.json()["error"]["message"]
        assert c.post("/v1/models/dogchest/predict?species=dog", files=files).status_code == 200
        assert c.post("/v1/models/chest/predict", files=files).status_code == 200  # no species: no check
        # no model named: the one model for the species answers
        r = c.post("/v1/triage", data={"species": "dog"}, files={"image": ("x.png", xray_png, "image/png")})
        assert r.status_code == 200 and r.json()["assessment"]["model"]["name"] == "dogchest"
        r = c.post("/v1/triage", data={"species": "cat"}, files={"image": ("x.png", xray_png, "image/png")})
        assert r.status_code == 422 and "for cat: none" in r.json()["error"]["message"]
        # the human symptom model never answers for a dog
        r = c.post("/v1/triage", data={"species": "dog", "text": "my dog keeps vomiting"})
        assert r.status_code == 422 and "no symptom model for dog" in r.json()["error"]["message"]
        assert c.post("/v1/triage", data={"species": "human", "text": "vomiting and fever"}).status_code == 200


def test_default_species_applies_to_requests_that_name_none(serve_dirs: dict[str, Path], tmp_path: Path,
                                                            xray_png: bytes) -> None:
    models = tmp_path / "models"
    _as_species(serve_dirs["models"] / "chest", models / "dogchest", ["dog"])
    s = ServeSettings(models_dir=models, symptoms_dir=serve_dirs["symptoms"], database_url=f"sqlite:///{tmp_path / 'a.db'}",
                      default_species="human")
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/models/dogchest/predict", files={"file": ("x.png", xray_png, "image/png")})
        assert r.status_code == 422 and "not human" in r.json()["error"]["message"]


def test_cli_refuses_another_species(serve_dirs: dict[str, Path], tmp_path: Path, xray_png: bytes) -> None:
    img = tmp_path / "x.png"
    img.write_bytes(xray_png)
    res = CliRunner().invoke(app, ["predict", str(serve_dirs["models"] / "chest"), str(img), "--species", "dog"])
    assert res.exit_code != 0 and "is for human, not dog" in res.output
    res = CliRunner().invoke(app, ["predict", str(serve_dirs["models"] / "chest"), str(img), "--species", "human"])
    assert res.exit_code == 0, res.output


def test_decision_settings_ship_in_the_bundle_and_a_deployment_can_override_them(
        serve_dirs: dict[str, Path], tmp_path: Path, xray_png: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from carelens.errors import ConfigError

    doc = json.loads((serve_dirs["models"] / "chest" / "bundle.json").read_text())
    assert {k: v for k, v in doc["decision"].items() if k not in ("critical_threshold", "finding_weights")} == {
        "likely": 0.7, "possible": 0.5, "ambiguous_margin": 0.1, "floor_when_unsure": "consultation", "top_k": 3,
        "severity_floor": 0.25}
    # what calibrate chose on validation ships too: the decision rule (the critical-probability threshold, or None)
    # and the finding weights (or None)
    assert doc["decision"]["critical_threshold"] == doc["calibration"]["decision_rule"]["critical_threshold"]
    assert doc["decision"]["finding_weights"] == doc["calibration"]["finding_weights"].get("weights")
    s = ServeSettings(models_dir=serve_dirs["models"], database_url=f"sqlite:///{tmp_path / 'a.db'}",
                      decision_likely=0.999, decision_top_k=1)
    with TestClient(create_app(s)) as c:
        d = c.get("/v1/models").json()[0]["decision"]
        assert d["likely"] == 0.999 and d["top_k"] == 1 and d["possible"] == 0.5  # the rest as shipped
        a = c.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")}).json()["assessment"]
        assert len(a["top"]) == 1 and (a["confidence"] != "likely" or a["top"][0]["probability"] >= 0.999)
    with pytest.raises(ConfigError, match="possible"):
        create_app(ServeSettings(models_dir=serve_dirs["models"], decision_possible=0.9, decision_likely=0.8))
    # the escalation rule a bundle chose can be set (a threshold) or turned off (the set rule) per deployment
    monkeypatch.setenv("CARELENS_DECISION_CRITICAL_THRESHOLD", "off")
    off = ServeSettings(models_dir=serve_dirs["models"], database_url=f"sqlite:///{tmp_path / 'b.db'}")
    assert off.decision_overrides() == {"critical_threshold": "off"}
    with TestClient(create_app(off)) as c:
        assert c.get("/v1/models").json()[0]["decision"]["critical_threshold"] is None
    shipped = DecisionParams(critical_threshold=0.2)
    assert shipped.policy(critical_threshold="off").critical_threshold is None
    assert shipped.policy(critical_threshold=0.3).critical_threshold == 0.3 == ServeSettings(
        decision_critical_threshold="0.3").decision_overrides()["critical_threshold"]
    assert shipped.policy().critical_threshold == 0.2  # nothing said: the bundle's
    for bad in ("1.5", "never"):
        monkeypatch.setenv("CARELENS_DECISION_CRITICAL_THRESHOLD", bad)
        with pytest.raises(ValidationError):
            ServeSettings()
