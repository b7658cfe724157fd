"""Fuzzing every operation of the OpenAPI schema with generated input: never a 5xx.

(schemathesis 4.32's pytest integration fails under pytest 9 here, `'Function' object has no attribute
'_nodeid'`, so the operations are read from the app's own OpenAPI document and driven by hypothesis.)
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carelens.serve import ServeSettings, create_app

junk = st.one_of(st.binary(max_size=2048), st.text(max_size=200).map(str.encode),
                 st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM"]))
text = st.one_of(st.none(), st.text(max_size=300))
json_like = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                         lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
                         max_leaves=8)


@pytest.fixture(scope="module")
def fuzz_client(serve_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    db = tmp_path_factory.mktemp("fuzz") / "a.db"
    app = create_app(ServeSettings(models_dir=serve_dirs["models"], symptoms_dir=serve_dirs["symptoms"],
                                   database_url=f"sqlite:///{db}", max_upload_bytes=4096))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_schema_lists_every_operation(fuzz_client: TestClient) -> None:
    paths = fuzz_client.get("/openapi.json").json()["paths"]
    assert {"/health", "/ready", "/metrics", "/v1/models", "/v1/models/{name}/predict", "/v1/triage",
            "/v1/symptoms", "/v1/feedback", "/v1/admin/reload"} <= set(paths)


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(name=st.text(min_size=1, max_size=20).map(lambda s: quote(s, safe="")),
       data=junk, field=st.sampled_from(["file", "image", "x"]), heat=st.sampled_from(["true", "no", "1", "%%"]))
def test_predict_fuzz(fuzz_client: TestClient, name: str, data: bytes, field: str, heat: str) -> None:
    for model in (name, "chest"):
        r = fuzz_client.post(f"/v1/models/{model}/predict", params={"heatmap": heat},
                             files={field: ("f.bin", data, "application/octet-stream")})
        assert r.status_code < 500, r.text


@FUZZ
@given(t=text, facts=st.one_of(st.none(), st.text(max_size=50), json_like.map(json.dumps)), model=text,
       data=st.one_of(st.none(), junk))
def test_triage_fuzz(fuzz_client: TestClient, t: str | None, facts: str | None, model: str | None,
                     data: bytes | None) -> None:
    form = {k: v for k, v in (("text", t), ("facts", facts), ("model", model)) if v is not None}
    files = {"image": ("f.bin", data, "application/octet-stream")} if data is not None else None
    r = fuzz_client.post("/v1/triage", data=form, files=files)
    assert r.status_code < 500, r.text


@FUZZ
@given(body=json_like, raw=st.binary(max_size=200))
def test_feedback_fuzz(fuzz_client: TestClient, body: object, raw: bytes) -> None:
    assert fuzz_client.post("/v1/feedback", json=body).status_code < 500
    r = fuzz_client.post("/v1/feedback", content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
