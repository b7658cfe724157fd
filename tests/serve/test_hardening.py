"""The service under abuse and overload: limits before work, fail-closed keys, rate limits, backpressure,
reloads that never lose a model, errors that are never a bare 500, privacy of the audit log."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from carelens.cli import app as cli
from carelens.errors import ConfigError
from carelens.serve import ServeSettings, create_app
from carelens.serve import memory as serve_memory
from carelens.serve.registry import MicroBatcher, Overloaded
from carelens.serve.routers import chat, ecg, feedback, models, ops, page, triage
from carelens.serve.storage import AuditLog


def _client(models: Path, tmp: Path, **kw: Any) -> TestClient:
    s = ServeSettings(models_dir=models, database_url=f"sqlite:///{tmp / 'audit.db'}", **kw)
    return TestClient(create_app(s), raise_server_exceptions=False)  # answer as the server would


def _png(w: int, h: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, "PNG")
    return buf.getvalue()


# -- limits before work ------------------------------------------------------------------------------
def test_oversized_body_is_refused_before_the_key_is_checked(models_copy: Path, tmp_path: Path) -> None:
    with _client(models_copy, tmp_path, api_keys="k", max_upload_bytes=100_000) as c:
        big = b"\0" * 2_000_000
        r = c.post("/v1/models/chest/predict", files={"file": ("a.png", big, "image/png")})  # no key at all
        assert r.status_code == 413 and r.json()["error"]["type"] == "too_large", r.text
        assert "165,536-byte limit" in r.json()["error"]["message"]  # 100,000 + form overhead

        def chunks():  # no Content-Length: counted while it streams
            for _ in range(40):
                yield b"\0" * 10_000

        r = c.post("/v1/models/chest/predict", content=chunks(),
                   headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413, r.text
        assert c.get("/v1/models").status_code == 401  # the limit did not open anything


def test_one_image_per_request_and_only_the_promised_formats(client_kw: dict[str, Any], xray_png: bytes) -> None:
    with _client(**client_kw) as c:
        two = [("file", ("a.png", xray_png, "image/png")), ("file", ("b.png", xray_png, "image/png"))]
        r = c.post("/v1/models/chest/predict", files=two)
        assert r.status_code in (400, 422) and "Traceback" not in r.text, r.text
        gif = io.BytesIO()
        Image.new("RGB", (8, 8)).save(gif, "GIF")  # Pillow reads GIF; the service does not
        r = c.post("/v1/models/chest/predict", files={"file": ("a.gif", gif.getvalue(), "image/gif")})
        assert r.status_code == 415 and "send a JPEG, PNG, BMP, TIFF or WebP image" in r.json()["error"]["message"]


def test_sixteen_bit_image_decodes_without_float_copies() -> None:
    from carelens.data import decode_image

    a = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    out = decode_image(buf.getvalue())
    expected = np.round(a.astype(np.float64) / 65535 * 255).astype(np.uint8)  # the float reference, once, here
    assert out.dtype == np.uint8 and np.array_equal(out[..., 0], expected)


@pytest.mark.parametrize("facts", ["[" * 100_000, "[" * 1500, '{"age": ' + "9" * 5000 + "}"])
def test_hostile_facts_are_a_4xx_not_a_500(client_kw: dict[str, Any], facts: str) -> None:
    from carelens.serve.errors import ApiError
    from carelens.serve.routers.triage import parse_facts

    with _client(**client_kw) as c:
        r = c.post("/v1/triage", data={"text": "fever", "facts": facts})
        assert r.status_code in (413, 422) and r.json()["error"]["message"], r.text
    with pytest.raises(ApiError) as e:  # however it arrives, the parser itself answers 422
        parse_facts(facts)
    assert e.value.status == 422 and e.value.kind == "malformed_json"


# -- keys, rates, errors -----------------------------------------------------------------------------
def test_a_missing_or_empty_keys_file_stops_the_service(models_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        create_app(ServeSettings(models_dir=models_copy, api_keys_file=tmp_path / "nope.txt",
                                 database_url=f"sqlite:///{tmp_path / 'a.db'}"))
    (tmp_path / "empty.txt").write_text("# no keys yet\n")
    with pytest.raises(ConfigError, match="holds no key"):
        create_app(ServeSettings(models_dir=models_copy, api_keys_file=tmp_path / "empty.txt",
                                 database_url=f"sqlite:///{tmp_path / 'a.db'}"))


def test_serve_refuses_to_run_open_beyond_loopback(models_copy: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELENS_DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    monkeypatch.delenv("CARELENS_API_KEYS", raising=False)
    res = CliRunner().invoke(cli, ["serve", "--models", str(models_copy), "--host", "0.0.0.0"])
    assert res.exit_code == 1 and "would be open to anyone" in res.output


def test_rate_limit_answers_429_with_retry_after(client_kw: dict[str, Any]) -> None:
    with _client(**client_kw, api_keys="a,b", rate_limit_per_s=0.5, rate_limit_burst=2) as c:
        codes = [c.get("/v1/models", headers={"X-API-Key": "a"}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/v1/models", headers={"X-API-Key": "a"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert c.get("/v1/models", headers={"X-API-Key": "b"}).status_code == 200  # per key


def test_open_mode_audit_rows_carry_a_key_id(client_kw: dict[str, Any], xray_png: bytes) -> None:
    with _client(**client_kw) as c:
        r = c.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")})
        assert c.app.state.services.log.get(r.json()["id"]).api_key_id == "open"  # type: ignore[attr-defined]
        assert r.headers["X-Request-ID"]


def test_an_unexpected_error_is_a_500_with_a_request_id_and_is_counted(client_kw: dict[str, Any],
                                                                      xray_png: bytes) -> None:
    with _client(**client_kw) as c:
        def broken(**_: Any) -> str:
            raise RuntimeError("database on fire")

        c.app.state.services.log.write = broken  # type: ignore[attr-defined]
        r = c.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")},
                   headers={"X-Request-ID": "req-42"})
        assert r.status_code == 500 and r.json()["error"]["request_id"] == "req-42"
        assert "fire" not in r.text  # the cause is logged, not sent
        assert 'status="500"' in c.get("/metrics").text


# -- backpressure ------------------------------------------------------------------------------------
class _SlowEngine:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.bundle = type("B", (), {"name": "slow"})()

    def assess(self, images: list[Any], heat: Any, facts: Any) -> list[tuple[str, None]]:
        self.calls.append(len(images))
        time.sleep(0.3)
        return [("ok", None)] * len(images)


def test_full_queue_refuses_at_once_and_abandoned_requests_are_not_computed() -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = _SlowEngine()
    b = MicroBatcher(engine, ThreadPoolExecutor(1), max_batch=1, max_wait_ms=0, max_queue=2)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Any], float]:
        first = asyncio.create_task(b.submit(np.zeros(1), False))
        await asyncio.sleep(0.05)  # the worker is busy with the first
        abandoned = asyncio.create_task(asyncio.wait_for(b.submit(np.zeros(1), False), 0.1))
        waiting = asyncio.create_task(b.submit(np.zeros(1), False))
        await asyncio.sleep(0.02)
        t = time.perf_counter()
        with pytest.raises(Overloaded, match="2 requests waiting"):
            await b.submit(np.zeros(1), False)  # queue full: refused at once, not queued
        refused_in = time.perf_counter() - t
        results = await asyncio.gather(first, abandoned, waiting, return_exceptions=True)
        return results, refused_in

    results, refused_in = asyncio.run(scenario())
    assert refused_in < 0.05
    assert results[0] == ("ok", None) and isinstance(results[1], TimeoutError) and results[2] == ("ok", None)
    assert engine.calls == [1, 1]  # the request whose caller gave up was never computed


def test_batches_in_flight_overlap_and_a_stop_still_answers_every_one() -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = _SlowEngine()
    b = MicroBatcher(engine, ThreadPoolExecutor(2), max_batch=1, max_wait_ms=0, in_flight=2)  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Any], float]:
        t = time.perf_counter()
        first = [asyncio.create_task(b.submit(np.zeros(1), False)) for _ in range(2)]
        both = await asyncio.gather(*first)
        took = time.perf_counter() - t
        queued = [asyncio.create_task(b.submit(np.zeros(1), False)) for _ in range(3)]
        await asyncio.sleep(0.05)  # two batches running, one waiting in the queue
        b.close()
        return [*both, *await asyncio.gather(*queued)], took

    results, took = asyncio.run(scenario())
    assert took < 0.5  # two 0.3 s batches side by side, not one after the other (0.6 s)
    assert results == [("ok", None)] * 5 and engine.calls == [1] * 5


def test_heatmaps_only_where_asked_and_capped(ham_bundle: Path) -> None:
    from carelens.bundle import load_bundle
    from carelens.predict import HEATMAP_MAX_SIDE, Engine

    engine = Engine(load_bundle(ham_bundle))
    big = np.random.default_rng(0).integers(0, 255, (1500, 2400, 3), dtype=np.uint8)
    out = engine.assess([big, big[:100, :100]], heatmaps=[True, False])
    assert out[0][1] is not None and max(out[0][1].shape) == HEATMAP_MAX_SIDE and out[1][1] is None
    assert out[0][1].shape == (640, 1024)  # aspect ratio kept


def test_no_route_dependency_costs_a_threadpool_hop() -> None:
    """A plain ``def`` dependency runs in FastAPI's threadpool: a thread hop per request on the event loop's critical
    path (making the key check and the services async took load_int8 from 170 to 213 requests/s with the audit log's
    group commit and the frozen heap)."""
    def calls(dep: Any) -> list[Any]:
        return [d.call for d in dep.dependencies] + [c for d in dep.dependencies for c in calls(d)]

    routes = [r for m in (chat, ecg, feedback, models, ops, page, triage) for r in m.router.routes]
    assert routes and all(isinstance(r, APIRoute) for r in routes)
    deps = {c for r in routes for c in calls(r.dependant)}  # type: ignore[attr-defined]
    assert {"services", "principal", "admin"} <= {c.__name__ for c in deps}
    assert all(inspect.iscoroutinefunction(c) for c in deps), [c.__name__ for c in deps
                                                             if not inspect.iscoroutinefunction(c)]


# -- reloads -----------------------------------------------------------------------------------------
def test_reload_keeps_serving_when_the_new_version_is_broken(client_kw: dict[str, Any], xray_png: bytes) -> None:
    from carelens.hashing import canonical_digest

    models = client_kw["models"]
    with _client(**client_kw) as c:
        doc = json.loads((models / "chest" / "bundle.json").read_text())  # a botched redeploy: version 2 ...
        doc["version"] = "2"
        doc["integrity"] = canonical_digest({k: v for k, v in doc.items() if k != "integrity"})
        (models / "chest" / "bundle.json").write_text(json.dumps(doc))
        (models / "chest" / "model.onnx").write_bytes(b"not a model")  # ... whose model file did not copy
        r = c.post("/v1/admin/reload")
        assert r.status_code == 200 and r.json()["loaded"] == {"chest": "1"}
        err = r.json()["errors"]["chest"]
        assert "still serving version 1" in err and str(models) not in err  # no server paths
        assert c.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")}).status_code == 200
        ready = c.get("/ready").json()
        assert ready["models"] == {"chest": "1"} and "chest" in ready["failed"]


def test_reload_tells_versions_by_content_and_refuses_duplicate_names(serve_dirs: dict[str, Path],
                                                                      client_kw: dict[str, Any]) -> None:
    models = client_kw["models"]
    with _client(**client_kw) as c:
        reg = c.app.state.services.registry  # type: ignore[attr-defined]
        first = reg.models["chest"]
        doc = json.loads((models / "chest" / "bundle.json").read_text())
        assert c.post("/v1/admin/reload").json()["errors"] == {}
        assert reg.models["chest"] is first  # same content: the warm engine stays
        shutil.copytree(models / "chest", models / "chest_copy")
        r = c.post("/v1/admin/reload").json()
        assert "duplicate model name 'chest'" in r["errors"]["chest_copy"] and r["loaded"] == {"chest": "1"}
        shutil.rmtree(models / "chest_copy")
        # a bundle being built (or left by a killed export) beside its folder is not a model yet
        shutil.copytree(models / "chest", models / ".chest.partial")
        r = c.post("/v1/admin/reload").json()
        assert r["errors"] == {} and r["loaded"] == {"chest": "1"}
        shutil.rmtree(models / ".chest.partial")
        from carelens.steps.export import export_run

        run = serve_dirs["run"]
        export_run(run, models / "chest", name="chest", version=doc["version"])  # same version string, new export
        c.post("/v1/admin/reload")
        assert reg.models["chest"] is not first and reg.models["chest"].digest != first.digest


def test_one_reload_at_a_time(client_kw: dict[str, Any]) -> None:
    with _client(**client_kw) as c:
        reg = c.app.state.services.registry  # type: ignore[attr-defined]
        with reg._reload:  # a reload in progress (held here)
            r = c.post("/v1/admin/reload")
        assert r.status_code == 409 and r.json()["error"]["type"] == "reload_in_progress"


# -- privacy -----------------------------------------------------------------------------------------
def test_free_text_is_not_stored_unless_asked(client_kw: dict[str, Any], serve_dirs: dict[str, Path]) -> None:
    text = "my name is Jane Doe, I have a high fever and a cough"
    for store, expected in ((False, None), (True, text)):
        with _client(**client_kw, symptoms_dir=serve_dirs["symptoms"], store_text=store) as c:
            r = c.post("/v1/triage", data={"text": text})
            assert r.status_code == 200, r.text
            rec = c.app.state.services.log.get(r.json()["id"])  # type: ignore[attr-defined]
            assert rec.assessment["text"] == expected and "high_fever" in rec.assessment["symptoms"]["present"]


def test_prune_deletes_rows_past_retention(database_url: str) -> None:
    log = AuditLog(database_url)
    first = log.record(kind="predict", model_name="m", model_version="1", assessment={}, latency_ms=1.0)
    log.add_feedback(first, "x", "", None)
    second = log.record(kind="predict", model_name="m", model_version="1", assessment={}, latency_ms=1.0)
    assert log.prune(30) == 0 and log.ids() == {first, second}  # both younger than 30 days
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=40)
    assert log.prune(30, now=later) == 2 and log.ids() == set()  # and their feedback with them
    with pytest.raises(ConfigError, match="at least 1 day"):
        log.prune(0)


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture()
def client_kw(models_copy: Path, tmp_path: Path) -> dict[str, Any]:
    return {"models": models_copy, "tmp": tmp_path, "max_upload_bytes": 200_000, "max_pixels": 1_000_000}


def test_concurrent_requests_beyond_the_queue_are_shed_not_failed(client_kw: dict[str, Any], xray_png: bytes) -> None:
    """Through the whole app: with a queue of 1, a burst gets 200s and 503s with Retry-After, never a 500."""
    with _client(**client_kw, max_queue=1, max_batch=1, max_wait_ms=0) as c:
        engine = c.app.state.services.registry.models["chest"].engine  # type: ignore[attr-defined]
        fast = engine.assess

        def slow(*a: Any, **k: Any) -> Any:
            time.sleep(0.2)  # a model that takes its time, so that a burst fills the queue
            return fast(*a, **k)

        engine.assess = slow
        codes: list[int] = []
        retry: list[str] = []

        def hit() -> None:
            r = c.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")})
            codes.append(r.status_code)
            if r.status_code == 503:
                retry.append(r.headers.get("Retry-After", ""))

        threads = [threading.Thread(target=hit) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(codes) == {200, 503} and all(r == "1" for r in retry), codes


def test_trusted_hosts_refuse_other_host_headers(client_kw: dict[str, Any]) -> None:
    with _client(**client_kw, trusted_hosts="triage.example.org") as c:
        assert c.get("/health").status_code == 400  # TestClient sends Host: testserver
        assert c.get("/health", headers={"Host": "triage.example.org"}).status_code == 200


_RESIDENT_AFTER_FREE = """
import ctypes, importlib.util, os, sys

# the module alone, not the carelens package: importing the service would leave the heap in a state of its own
spec = importlib.util.spec_from_file_location("memory", sys.argv[2])
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]


def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def touched(n: int) -> int:
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    return p


class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                                "uordblks", "fordblks", "keepcost")]


libc.mallinfo2.restype = Info


def info() -> str:
    i = libc.mallinfo2()
    return f"heap={i.arena >> 20}MB free={i.fordblks >> 20}MB top={i.keepcost >> 20}MB mapped={i.hblks}/{i.hblkhd >> 20}MB"


sys.stderr.write("start " + info() + " env=" + str(sorted(k for k in os.environ if "MALLOC" in k or "GLIBC" in k)) + "\\n")
applied = memory.tune_malloc() if sys.argv[1] == "tune" else {}
libc.free(touched(8 << 20))  # a freed 8 MB mapped block: glibc's moving threshold rises past it
before = resident()
images = []
for _ in range(32):  # 1 MB buffers (a decoded image's worth), each followed by a smaller block that stays live
    images.append(touched(1 << 20))
    touched(96 << 10)  # under the fixed threshold: from the heap, after the buffer
sys.stderr.write("allocated " + info() + "\\n")
for p in images:
    libc.free(p)
sys.stderr.write("freed " + info() + "\\n")
print(sorted(applied), round((resident() - before) / 2**20))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_tuned_malloc_gives_freed_image_buffers_back_unless_the_operator_chose(tmp_path: Path) -> None:
    """32 freed 1 MB buffers with live 96 KB blocks between them stay resident once glibc's threshold has moved past
    them (the heap cannot shrink under a live block); with the threshold fixed each was mapped and is unmapped, and
    only the small blocks (3 MB) stay. Settings the operator put in the environment stand. The child process gets a
    bare environment (what earlier tests or libraries left in this one is not its business) and the module alone."""
    script = tmp_path / "resident.py"
    script.write_text(_RESIDENT_AFTER_FREE)
    diagnostics: list[str] = []

    def run(mode: str, **env: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, str(script), mode, serve_memory.__file__], capture_output=True,
                             text=True, check=True, env={"PATH": os.environ.get("PATH", ""), **env})
        applied, mb = out.stdout.strip().rsplit(" ", 1)
        diagnostics.append(f"{mode} {env}: {out.stderr.strip()}")
        return applied, int(mb)

    plain, tuned = run("plain"), run("tune")
    assert plain[0] == "[]" and plain[1] >= 24, diagnostics  # glibc's default: still resident (MB)
    assert tuned == ("['arenas', 'mmap_threshold']", tuned[1]) and tuned[1] <= 8, diagnostics
    assert run("tune", MALLOC_ARENA_MAX="4")[0] == "['mmap_threshold']"  # the operator's arena count stands
    operator = run("tune", MALLOC_ARENA_MAX="4", MALLOC_MMAP_THRESHOLD_=str(16 << 20))
    assert operator[0] == "[]" and operator[1] >= 24, diagnostics  # and their threshold: 1 MB is below it, from the heap


def test_a_service_that_trusts_keys_checks_every_bundle_it_serves(models_copy: Path, serve_dirs: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    """Signed image and symptom bundles are served; the symptom bundle was loaded unchecked before."""
    res = CliRunner().invoke(cli, ["keys", "generate", "--out", str(tmp_path / "keys")])
    assert res.exit_code == 0, res.output
    symptoms = shutil.copytree(serve_dirs["symptoms"], tmp_path / "symptoms")
    settings = ServeSettings(models_dir=models_copy, symptoms_dir=symptoms, trusted_keys_dir=tmp_path / "keys",
                             database_url=f"sqlite:///{tmp_path / 'a.db'}")
    with TestClient(create_app(settings)) as c:
        assert c.get("/ready").status_code == 503  # the image bundle is unsigned
        r = c.post("/v1/triage", data={"text": "fever and a cough"})
        assert r.status_code == 503 and "not signed" in r.json()["error"]["message"]
    for folder in (models_copy / "chest", symptoms):
        res = CliRunner().invoke(cli, ["keys", "sign", str(folder), "--key", str(tmp_path / "keys" / "private.pem")])
        assert res.exit_code == 0 and "signed" in res.output, res.output
    with TestClient(create_app(settings)) as c:
        assert c.get("/ready").status_code == 200
        assert c.post("/v1/triage", data={"text": "fever and a cough"}).status_code == 200
    doc = json.loads((symptoms / "symptoms.json").read_text())  # altered after signing: refused again
    doc["threshold"] = 0.1
    (symptoms / "symptoms.json").write_text(json.dumps(doc))
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/triage", data={"text": "fever and a cough"})
        assert r.status_code == 503 and "altered after signing" in r.json()["error"]["message"]
