"""The conversation endpoint: context kept in the database across messages and restarts, explanations from
templates or from a language model (a scripted OpenAI-compatible server over real HTTP) behind guardrails."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from carelens.explain import LlmSettings
from carelens.labels import TRIAGE_ACTIONS
from carelens.scenarios import scripted_llm as fake_llm
from carelens.serve import ServeSettings, create_app


def _settings(serve_dirs: dict[str, Path], db: Path | str, **kw: object) -> ServeSettings:
    return ServeSettings(models_dir=serve_dirs["models"], symptoms_dir=serve_dirs["symptoms"],
                         database_url=db if isinstance(db, str) else f"sqlite:///{db}", **kw)


def test_conversation_keeps_context_and_survives_a_restart(serve_dirs: dict[str, Path], database_url: str,
                                                          xray_png: bytes) -> None:
    db = database_url  # SQLite and a real PostgreSQL server
    with TestClient(create_app(_settings(serve_dirs, db))) as c:
        r = c.post("/v1/chat", data={"message": "what's wrong?"})
        assert r.status_code == 200, r.text
        first = r.json()
        sid = first["session_id"]
        assert first["assessment"] is None and "Send a photo" in first["explanation"]
        r = c.post("/v1/chat", data={"session_id": sid, "message": "my child has a high fever and a cough"})
        body = r.json()
        assert body["assessment"]["based_on"] == ["symptoms"] and body["explained_by"] == "template"
        assert "Not a diagnosis" in body["explanation"] and "doctor" in body["explanation"]
        r = c.post("/v1/chat", data={"session_id": sid, "message": "here is the X-ray"},
                   files={"image": ("x.png", xray_png, "image/png")})
        body = r.json()
        assert r.status_code == 200 and body["assessment"]["based_on"] == ["image", "symptoms"]  # earlier words kept
        assert body["heatmap_png"] and body["symptoms"]["present"]
        level = body["assessment"]["triage"]["level"]
        assert 'carelens_explanations_total{by="template",outcome="ok"} 2' in c.get("/metrics").text
    with TestClient(create_app(_settings(serve_dirs, db))) as c:  # a restart: the conversation is in the database
        hist = c.get(f"/v1/chat/{sid}").json()
        assert [h["role"] for h in hist] == ["user", "assistant"] * 3
        assert hist[-1]["assessment"]["triage"]["level"] == level
        r = c.post("/v1/chat", data={"session_id": sid, "message": "also a runny nose"})
        assert r.json()["assessment"]["based_on"] == ["image", "symptoms"]  # the photo's finding is still known
        assert c.post("/v1/chat", data={"session_id": "nope", "message": "hi"}).status_code == 404
    with TestClient(create_app(_settings(serve_dirs, db, chat_session_ttl_s=0.5))) as c:
        time.sleep(1.0)
        r = c.post("/v1/chat", data={"session_id": sid, "message": "hello again"})
        assert r.status_code == 404 and "idle longer" in r.json()["error"]["message"]


def test_language_model_answers_are_guarded(serve_dirs: dict[str, Path], tmp_path: Path, xray_png: bytes) -> None:
    with fake_llm() as llm:
        s = _settings(serve_dirs, tmp_path / "c.db", llm=LlmSettings(url=llm.url, model="m", timeout_s=1.0))
        with TestClient(create_app(s)) as c:
            files = {"image": ("x.png", xray_png, "image/png")}
            llm.answer("Nothing to worry about, it can wait. This is not a diagnosis.")
            r = c.post("/v1/chat", data={"message": "high fever, chest pain and I cannot breathe. is it bad?"},
                       files=files).json()
            assert r["assessment"]["triage"]["level"] != "self_care"
            # the language model tried to downgrade carelens's level: its answer is replaced
            assert r["explained_by"] == "template" and any("lower urgency" in f for f in r["guardrail_failures"])
            sid = r["session_id"]
            asked = llm.requests[-1]["body"]["messages"]
            assert "is it bad?" in asked[1]["content"] and "triage" in asked[1]["content"]
            level = r["assessment"]["triage"]["level"]
            llm.answer(f"{TRIAGE_ACTIONS[level].format(who='doctor')} This is not a diagnosis.")  # keeps to the level
            r = c.post("/v1/chat", data={"session_id": sid, "message": "ok"}).json()
            assert r["assessment"]["triage"]["level"] == level
            assert r["explained_by"] == "llm" and r["explanation"].startswith(TRIAGE_ACTIONS[level].format(who="doctor"))
            llm.answer("This is not a diagnosis.", delay=2.0)  # slower than the timeout
            r = c.post("/v1/chat", data={"session_id": sid, "message": "and now?"}).json()
            assert r["explained_by"] == "template" and "language model failed" in r["guardrail_failures"][0]
            metrics = c.get("/metrics").text
            assert 'carelens_explanations_total{by="template",outcome="error"} 1' in metrics
