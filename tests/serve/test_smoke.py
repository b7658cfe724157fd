"""`carelens smoke`: a running service checked against the bundles that were deployed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from carelens.cli import app
from carelens.hashing import canonical_digest
from carelens.serve import ServeSettings, create_app, smoke
from carelens.steps import build_clinical


def test_smoke_passes_for_the_deployed_bundles_and_catches_a_different_one(ham_bundle: Path, tmp_path: Path) -> None:
    deployed = tmp_path / "models"
    shutil.copytree(ham_bundle, deployed / "derma")
    build_clinical("heart", deployed / "heart")
    s = ServeSettings(models_dir=deployed, database_url=f"sqlite:///{tmp_path / 'a.db'}")
    with TestClient(create_app(s)) as c:
        checks = smoke("http://testserver", models_dir=deployed, client=c)
        names = [ch.name for ch in checks]
        assert all(ch.ok for ch in checks), [ch for ch in checks if not ch.ok]
        assert "bad input to derma refused" in names
        assert "derma: same answer as the local bundle" in names and "heart: same answer as the local bundle" in names
        # the bundle the pipeline meant to deploy is another version: the served answers are not its answers
        other = tmp_path / "meant"
        shutil.copytree(deployed / "derma", other / "derma")
        doc = json.loads((other / "derma" / "bundle.json").read_text())
        doc["version"] = "2"
        doc["integrity"] = canonical_digest({k: v for k, v in doc.items() if k != "integrity"})
        (other / "derma" / "bundle.json").write_text(json.dumps(doc))
        failed = [ch for ch in smoke("http://testserver", models_dir=other, client=c) if not ch.ok]
        assert len(failed) == 1 and "model" in failed[0].detail and "'2'" in failed[0].detail
        # without local bundles, the answers are checked for form only
        loose = smoke("http://testserver", client=c)
        assert all(ch.ok for ch in loose) and any("well-formed" in ch.name for ch in loose)
    r = CliRunner().invoke(app, ["smoke", "http://127.0.0.1:9"])  # nothing listens there
    assert r.exit_code == 1 and "FAILED" in r.output and "ConnectError" in r.output


def test_env_example_lists_every_setting_and_reads_back_as_the_defaults(tmp_path: Path) -> None:
    from carelens.explain import LlmSettings

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    names = {line.lstrip("# ").split("=")[0] for line in text.splitlines() if "=" in line and "CARELENS_" in line}
    want = {f"CARELENS_{n.upper()}" for n in ServeSettings.model_fields if n != "llm"}
    want |= {f"CARELENS_LLM_{n.upper()}" for n in LlmSettings.model_fields}
    assert names == want, (want - names, names - want)
    read = ServeSettings(_env_file=Path(__file__).resolve().parents[2] / ".env.example")  # type: ignore[call-arg]
    assert read.model_dump() == ServeSettings(_env_file=None).model_dump()  # type: ignore[call-arg]


def test_cors_is_off_by_default_and_names_its_origins(tmp_path: Path) -> None:
    base = {"models_dir": tmp_path, "database_url": f"sqlite:///{tmp_path / 'a.db'}"}
    pre = {"Origin": "https://clinic.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(ServeSettings(**base))) as c:
        assert "access-control-allow-origin" not in c.options("/v1/models", headers=pre).headers
    with TestClient(create_app(ServeSettings(**base, cors_origins="https://clinic.example"))) as c:
        ok = c.options("/v1/models", headers=pre)
        other = c.options("/v1/models", headers={**pre, "Origin": "https://elsewhere.example"})
    assert ok.headers["access-control-allow-origin"] == "https://clinic.example"
    assert "access-control-allow-origin" not in other.headers
