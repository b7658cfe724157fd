"""The service as a real process: acknowledged predictions survive a kill, reload under load loses
no request, and the web page works end to end in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import CHROMIUM_ARGS

from carelens.serve.metrics import Metrics
from carelens.serve.storage import AuditLog


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, models: Path, db: Path | str, symptoms: Path | None = None, *, workers: int = 1,
                 **settings: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "CARELENS_MODELS_DIR": str(models),
               "CARELENS_DATABASE_URL": db if isinstance(db, str) else f"sqlite:///{db}",
               "CARELENS_RATE_LIMIT_PER_S": "0",  # load, not the limiter, is under test here
               **{f"CARELENS_{k.upper()}": v for k, v in settings.items()}}
        if symptoms:
            env["CARELENS_SYMPTOMS_DIR"] = str(symptoms)
        # its own process group: a kill reaches the worker processes too
        self.proc = subprocess.Popen([sys.executable, "-m", "carelens.cli", "serve", "--port", str(self.port),
                                      "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode() if self.proc.stderr else "server died")
            time.sleep(0.3)
        self.kill()
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _replace_with_version_2(models: Path, tmp: Path) -> None:
    """A new version of the chest bundle replaces the old one on disk, re-sealed as `carelens export` would."""
    from carelens.bundle import BundleSpec

    new = tmp / "chest_v2"
    shutil.copytree(models / "chest", new)
    doc = json.loads((new / "bundle.json").read_text())
    doc["version"] = "2"
    BundleSpec.model_validate(doc).write(new)
    shutil.rmtree(models / "chest")
    shutil.move(str(new), models / "chest")


def test_acknowledged_predictions_survive_a_kill(models_copy: Path, tmp_path: Path, xray_png: bytes) -> None:
    db = tmp_path / "audit.db"
    srv = Server(models_copy, db)
    ids = []
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for _ in range(20):
                r = c.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")})
                assert r.status_code == 200
                ids.append(r.json()["id"])
    finally:
        srv.kill()  # no clean shutdown: only what was committed before each response counts
    assert set(ids) <= AuditLog(f"sqlite:///{db}").ids()


def test_hot_reload_under_load_fails_no_request(models_copy: Path, tmp_path: Path, xray_png: bytes) -> None:
    srv = Server(models_copy, tmp_path / "audit.db")
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            while not stop.is_set():
                r = c.post("/v1/models/chest/predict", files={"file": ("x.png", xray_png, "image/png")})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["assessment"]["model"]["version"])

    threads = [threading.Thread(target=client) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        _replace_with_version_2(models_copy, tmp_path)  # then the admin reloads
        r = httpx.post(srv.url + "/v1/admin/reload", timeout=60)
        assert r.json()["loaded"] == {"chest": "2"}
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        srv.kill()
    assert len(statuses) > 20
    assert set(statuses) == {200}
    assert versions == {"1", "2"}


def _ready_by_worker(url: str, tries: int = 60) -> dict[int, dict[str, str]]:
    """/ready asked on fresh connections, so that each worker gets some: worker pid -> the models it serves."""
    seen: dict[int, dict[str, str]] = {}
    for _ in range(tries):
        body = httpx.get(url + "/ready", timeout=10).json()
        seen[body["worker"]] = body["models"]
    return seen


def test_two_workers_share_the_database_the_metrics_and_a_reload(models_copy: Path, tmp_path: Path,
                                                                 xray_png: bytes) -> None:
    srv = Server(models_copy, tmp_path / "audit.db", workers=2, api_keys="admin:adm", worker_sync_s="0.3")
    key = {"X-API-Key": "adm"}
    try:
        assert len(_ready_by_worker(srv.url)) == 2  # two processes answer on the one port
        ids = []
        for _ in range(12):
            r = httpx.post(srv.url + "/v1/models/chest/predict", headers=key, timeout=30,
                           files={"file": ("x.png", xray_png, "image/png")})
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
        time.sleep(1.0)  # every worker has written its counts
        route = 'route="/v1/models/{name}/predict",status="200"'
        for _ in range(6):  # whichever worker answers the scrape, it reports the service's total
            text = httpx.get(srv.url + "/metrics", headers=key, timeout=10).text
            assert f'carelens_requests_total{{method="POST",{route}}} 12' in text, text[:600]
        _replace_with_version_2(models_copy, tmp_path)
        r = httpx.post(srv.url + "/v1/admin/reload", headers=key, timeout=60)  # reaches one worker ...
        assert r.json()["loaded"] == {"chest": "2"}
        time.sleep(2.0)  # ... the other follows within worker_sync_s (plus its load)
        seen = _ready_by_worker(srv.url)
        assert len(seen) == 2 and all(m == {"chest": "2"} for m in seen.values()), seen
    finally:
        srv.kill()
    assert set(ids) <= AuditLog(f"sqlite:///{tmp_path / 'audit.db'}").ids()  # both wrote to the one database


@contextmanager
def _browser_page(chromium: str, errors: list[str]) -> Iterator[Any]:
    """A Chromium page (playwright) whose console errors are collected in ``errors``."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page
        browser.close()


def test_web_page_end_to_end(chromium: str, serve_dirs: dict[str, Path], tmp_path: Path, xray_png: bytes) -> None:
    (tmp_path / "x.png").write_bytes(xray_png)
    srv = Server(serve_dirs["models"], tmp_path / "audit.db", serve_dirs["symptoms"])
    errors: list[str] = []
    external: list[str] = []
    try:
        with _browser_page(chromium, errors) as page:
            page.on("request", lambda r: external.append(r.url) if not r.url.startswith((srv.url, "data:")) else None)
            page.goto(srv.url + "/")
            page.wait_for_selector("#model option", state="attached")
            page.set_input_files("#image", str(tmp_path / "x.png"))
            page.fill("#text", "cough and high fever, no rash")
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            banner = page.inner_text("#banner")
            bars = page.locator("#top .bar").count()
            heat_visible = page.is_visible("#heatmap")
            disclaimer = page.inner_text("#disclaimer")
            answer = page.inner_text("#answer")
            # the page is a conversation: a second message is assessed with the first (the photo is remembered)
            page.fill("#text", "also chills and a headache")
            page.click("#submit")
            page.wait_for_function("document.querySelectorAll('#conversation li').length === 4", timeout=60_000)
            turns = page.locator("#conversation li").all_inner_texts()
            basis = page.inner_text("#basis")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    finally:
        srv.kill()
    assert any(level in banner for level in ("SELF CARE", "CONSULTATION", "EMERGENCY"))
    assert bars == 2 and heat_visible and disclaimer.startswith("Not a diagnosis")
    assert "Not a diagnosis" in answer and turns[0].startswith("You: cough and high fever")
    assert turns[2] == "You: also chills and a headache" and "image" in basis and "symptoms" in basis
    assert errors == [] and external == []
    assert (tmp_path / "page.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "page.png", serve_dirs["root"] / "page.png")


def test_web_page_sends_clinical_facts(chromium: str, ham_bundle: Path, data_dir: Path, tmp_path: Path) -> None:
    from carelens.data import open_dataset

    shutil.copytree(ham_bundle, tmp_path / "models" / "derma")
    ex = next(e for e in open_dataset(data_dir / "ham10000") if e.label == "bkl")
    srv = Server(tmp_path / "models", tmp_path / "audit.db")
    errors: list[str] = []
    try:
        with _browser_page(chromium, errors) as page:
            page.goto(srv.url + "/")
            page.wait_for_selector("#fact-age", state="visible")
            page.set_input_files("#image", str(ex.path))
            page.fill("#fact-age", "70")
            page.select_option("#fact-localization", "face")
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            basis = page.inner_text("#basis")
    finally:
        srv.kill()
    assert basis == "Based on: image, facts" and errors == []


def test_web_page_renders_a_clinical_form(chromium: str, data_dir: Path, tmp_path: Path) -> None:
    from carelens.steps import build_clinical

    if not (data_dir / "uci_heart_disease").is_dir():
        pytest.skip("uci_heart_disease is missing")
    build_clinical("heart", tmp_path / "models" / "heart")
    srv = Server(tmp_path / "models", tmp_path / "audit.db")
    errors: list[str] = []
    try:
        with _browser_page(chromium, errors) as page:
            page.goto(srv.url + "/")
            page.wait_for_selector("#fact-trestbps", state="visible")
            photo_hidden = page.is_hidden("#photo-box")
            for name, value in (("age", "63"), ("trestbps", "145"), ("chol", "233"), ("thalach", "120")):
                page.fill(f"#fact-{name}", value)
            for name, value in (("sex", "male"), ("cp", "asymptomatic"), ("exang", "yes")):
                page.select_option(f"#fact-{name}", value)
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            banner = page.inner_text("#banner")
            factors = page.locator("#factors li").all_inner_texts()
    finally:
        srv.kill()
    assert photo_hidden and banner.startswith("CONSULTATION 24") and errors == []
    assert any("raises the risk of heart disease" in f for f in factors), factors


def test_a_worker_dumps_its_counts_from_two_threads_at_once(tmp_path: Path) -> None:
    """A worker among several writes its counts from its sync thread and from a /metrics scrape at the same time: no
    dump may fail, and the folder always sums to the counts (with one temporary file name, a rename failed and the
    scrape answered 500)."""
    m = Metrics()
    for _ in range(5):
        m.observe_request("POST", "/v1/models/{name}/predict", 200, 0.01)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: m.dump(tmp_path), range(400)))  # raises here if any dump failed
    assert 'status="200"} 5' in Metrics.combined(tmp_path).render()
    assert [p.name for p in tmp_path.iterdir()] == [f"worker-{os.getpid()}.json"]  # no temporary file left behind
