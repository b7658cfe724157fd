from __future__ import annotations

import gc
import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from carelens.bundle import load_bundle
from carelens.serve import ServeSettings, create_app


def _client(models: Path, tmp: Path, symptoms: Path | None = None, **kw: object) -> TestClient:
    kw.setdefault("database_url", f"sqlite:///{tmp / 'audit.db'}")
    s = ServeSettings(models_dir=models, symptoms_dir=symptoms, **kw)  # type: ignore[arg-type]
    return TestClient(create_app(s))


@pytest.fixture()
def client(models_copy: Path, serve_dirs: dict[str, Path], tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    """The service on each audit database: SQLite and a real PostgreSQL server."""
    with _client(models_copy, tmp_path, serve_dirs["symptoms"], max_upload_bytes=200_000, max_pixels=1_000_000,
                 database_url=database_url) as c:
        yield c


def test_every_endpoint(client: TestClient, xray_png: bytes, models_copy: Path) -> None:
    assert client.get("/health").json() == {"status": "alive"}
    assert gc.get_freeze_count() > 0  # the start-up heap is out of the collector's sight while serving
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["models"] == {"chest": "1"} and r.json()["symptoms"]
    models = client.get("/v1/models").json()
    assert models[0]["name"] == "chest" and [c["id"] for c in models[0]["classes"]] == ["normal", "pneumonia"]
    # the card's figures are the bundle's own calls and what its decisions cost, not the raw network's top score
    cal = load_bundle(models_copy / "chest").spec.calibration
    card = models[0]["metrics"]
    assert card["balanced_accuracy"] == cal["balanced_accuracy"] and card["over_triage_rate"] == cal["over_triage_rate"]
    assert card["critical_miss_rate"] == cal["critical_miss_rate"]
    r = client.post("/v1/models/chest/predict?heatmap=true", files={"file": ("x.png", xray_png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["assessment"]["model"] == {"name": "chest", "version": "1"} and body["heatmap_png"]
    assert abs(sum(t["probability"] for t in body["assessment"]["top"]) - 1) < 1e-3
    pid = body["id"]
    fb = client.post("/v1/feedback", json={"prediction_id": pid, "diagnosis": "pneumonia"})
    assert fb.status_code == 200 and fb.json()["prediction_id"] == pid
    r = client.post("/v1/triage", data={"text": "high fever, cough and chest pain, no rash"},
                    files={"image": ("x.png", xray_png, "image/png")})
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["sources"]["image"] and t["sources"]["symptoms"] and "skin_rash" in t["symptoms"]["absent"]
    said = {m["id"]: m for m in t["symptoms"]["understood"]}  # what each symptom was read from
    assert said["skin_rash"]["negated"] and said["skin_rash"]["text"] == "rash" and said["cough"]["method"] == "phrase"
    r = client.post("/v1/triage", data={"text": "vomiting and diarrhoea"})
    assert r.status_code == 200 and r.json()["sources"]["image"] is None
    vocab = client.get("/v1/symptoms").json()
    assert len(vocab) == 131 and {"id", "name", "group", "weight", "synonyms"} <= set(vocab[0])
    assert client.post("/v1/admin/reload").json()["loaded"] == {"chest": "1"}
    svc = client.app.state.services  # type: ignore[attr-defined]
    assert gc.get_freeze_count() == 0 and svc.thawed_at is not None  # thawed by the reload: the retired model can go
    assert not svc.settle_heap(now=svc.thawed_at + 1)  # a request may still hold the retired model
    assert svc.settle_heap(now=svc.thawed_at + svc.settings.request_timeout_s) and gc.get_freeze_count() > 0
    m = client.get("/metrics").text
    assert "carelens_requests_total" in m and 'carelens_triage_total{level="' in m and "carelens_ood_rate" in m
    assert client.get("/").text.startswith("<!doctype html>")
    schema = client.get("/openapi.json").json()
    assert "/v1/triage" in schema["paths"] and "/v1/models/{name}/predict" in schema["paths"]


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_truncated() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()[:300]


BAD = [
    ("not an image", "post", "/v1/models/chest/predict", {"files": {"file": ("a.jpg", b"hello, I am text", "image/jpeg")}}, 415),
    ("truncated", "post", "/v1/models/chest/predict", {"files": {"file": ("a.jpg", _jpeg_truncated(), "image/jpeg")}}, 422),
    ("zero bytes", "post", "/v1/models/chest/predict", {"files": {"file": ("a.png", b"", "image/png")}}, 400),
    ("huge upload", "post", "/v1/models/chest/predict", {"files": {"file": ("a.png", b"\0" * 300_000, "image/png")}}, 413),
    ("too many pixels", "post", "/v1/models/chest/predict", {"files": {"file": ("a.png", _png(2000, 1000), "image/png")}}, 413),
    ("wrong field", "post", "/v1/models/chest/predict", {"files": {"photo": ("a.png", _png(8, 8), "image/png")}}, 422),
    ("unknown model", "post", "/v1/models/brain/predict", {"files": {"file": ("a.png", _png(8, 8), "image/png")}}, 404),
    ("no symptom recognised", "post", "/v1/triage", {"data": {"text": "the weather is lovely"}}, 422),
    ("malformed facts JSON", "post", "/v1/triage", {"data": {"text": "fever", "facts": "{age: 5"}}, 422),
    ("facts not an object", "post", "/v1/triage", {"data": {"text": "fever", "facts": "[1, 2]"}}, 422),
    ("nothing to assess", "post", "/v1/triage", {"data": {}}, 422),
    ("malformed feedback JSON", "post", "/v1/feedback", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ("feedback missing field", "post", "/v1/feedback", {"json": {"prediction_id": "x"}}, 422),
    ("unknown prediction", "post", "/v1/feedback", {"json": {"prediction_id": "nope", "diagnosis": "x"}}, 404),
    ("unknown route", "get", "/v2/everything", {}, 404),
]


@pytest.mark.parametrize(("case", "method", "url", "kwargs", "status"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx(client: TestClient, case: str, method: str, url: str, kwargs: dict, status: int) -> None:
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status, (case, r.text)
    body = r.json()
    assert body["error"]["message"] and "Traceback" not in r.text


def test_api_keys(models_copy: Path, tmp_path: Path, xray_png: bytes) -> None:
    with _client(models_copy, tmp_path, api_keys="user-key,admin:admin-key") as c:
        assert c.get("/health").status_code == 200  # liveness stays open
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/v1/models", headers={"X-API-Key": "user-key"}).status_code == 200
        r = c.post("/v1/models/chest/predict", headers={"Authorization": "Bearer user-key"},
                   files={"file": ("x.png", xray_png, "image/png")})
        assert r.status_code == 200
        assert c.post("/v1/admin/reload", headers={"X-API-Key": "user-key"}).status_code == 403
        assert c.post("/v1/admin/reload", headers={"X-API-Key": "admin-key"}).status_code == 200
        rec = c.app.state.services.log.get(r.json()["id"])  # type: ignore[attr-defined]
        assert rec is not None and rec.api_key_id and "user-key" not in json.dumps(rec.assessment)


def test_audit_row_and_no_image_stored_by_default(client: TestClient, xray_png: bytes, tmp_path: Path) -> None:
    r = client.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")})
    rec = client.app.state.services.log.get(r.json()["id"])  # type: ignore[attr-defined]
    assert rec.model_name == "chest" and rec.model_version == "1" and rec.image_width == 28
    assert rec.assessment["triage"]["level"] == r.json()["assessment"]["triage"]["level"]
    import hashlib

    assert rec.input_sha256 == hashlib.sha256(xray_png).hexdigest()
    assert not (tmp_path / "stored_images").exists()


def test_not_ready_without_models(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with _client(tmp_path / "empty", tmp_path) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and "no bundles" in r.json()["error"]["message"]


def test_triage_fuses_clinical_facts(ham_bundle: Path, data_dir: Path, tmp_path: Path) -> None:
    import shutil

    from carelens.data import open_dataset

    models = tmp_path / "models"
    shutil.copytree(ham_bundle, models / "derma")
    ex = next(e for e in open_dataset(data_dir / "ham10000") if e.label == "bkl")
    image = {"image": ("lesion.jpg", Path(ex.path).read_bytes(), "image/jpeg")}
    with _client(models, tmp_path) as c:
        info = c.get("/v1/models").json()[0]
        assert info["facts"]["age"]["type"] == "number" and "back" in info["facts"]["localization"]["values"]
        alone = c.post("/v1/triage", files=image).json()
        assert alone["facts_used"] is False and alone["assessment"]["based_on"] == ["image"]
        r = c.post("/v1/triage", files=image, data={"facts": json.dumps({"age": 70, "sex": "male",
                                                                          "localization": "face"})})
        assert r.status_code == 200, r.text
        fused = r.json()
        assert fused["facts_used"] is True and fused["assessment"]["based_on"] == ["image", "facts"]
        assert fused["assessment"]["top"] != alone["assessment"]["top"]
        for facts, code in [({"weight": 3}, "invalid_facts"), ({"age": 400}, "invalid_facts"),
                            ({"localization": "elbow"}, "invalid_facts")]:
            r = c.post("/v1/triage", files=image, data={"facts": json.dumps(facts)})
            assert r.status_code == 422 and r.json()["error"]["type"] == code, r.text
        r = c.post("/v1/triage", data={"facts": json.dumps({"age": 40})})  # facts alone: nothing to fuse them with
        assert r.status_code == 422 and "nothing_to_assess" in r.text
