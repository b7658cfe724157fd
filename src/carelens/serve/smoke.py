"""`carelens smoke URL`: a post-deployment check of a running service, for CI/CD.

It asks the service what it serves, sends each image model a probe image and each clinical model a probe case,
and checks the answers: with ``models_dir`` (the bundles that were deployed), that every answer is the one the
bundle gives locally (same version, same top class and triage, probabilities within ``atol``); without it, that
every answer is a well-formed assessment. A known-bad input (bytes that are no image) must be refused with a 4xx
and an error body, never a 5xx or an answer. ECG models are listed, not probed (they read recordings).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from carelens.bundle import Bundle, TabularBundle, is_signal, load_any
from carelens.labels import TRIAGE_LEVELS
from carelens.predict import Engine
from carelens.serve.registry import bundle_paths

__all__ = ["SmokeCheck", "probe_case", "probe_image", "smoke"]

PROBE_SEED = 20261126


@dataclass(frozen=True)
class SmokeCheck:
    name: str
    ok: bool
    detail: str


def probe_image(size: int = 96, seed: int = PROBE_SEED) -> np.ndarray:
    """A deterministic, smooth RGB image (uint8): the same bytes on every machine, so that the service and the
    local bundle see the same pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y + rng.uniform())) for _ in range(3)]
    return np.clip((np.stack(channels, -1) + 1) * 127.5, 0, 255).astype(np.uint8)


def probe_case(bundle_inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """A case inside every input's accepted range: the middle of a number's range (or 1), a category's first
    value."""
    row: dict[str, Any] = {}
    for f in bundle_inputs:
        if f["type"] == "category":
            row[f["name"]] = f["values"][0]
        else:
            lo, hi = f.get("min"), f.get("max")
            row[f["name"]] = round((lo + hi) / 2, 3) if lo is not None and hi is not None else 1.0
    return row


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _local(models_dir: Path | None) -> dict[str, Any]:
    """The deployed bundles by name (image and clinical; ECG bundles are not probed)."""
    out: dict[str, Any] = {}
    if models_dir is None:
        return out
    for p in bundle_paths(models_dir):
        if is_signal(p):
            continue
        b = load_any(p)
        out[b.name] = b
    return out


def _well_formed(a: dict[str, Any]) -> str:
    """'' when an assessment has what every assessment must have, else what is wrong."""
    if a.get("triage", {}).get("level") not in TRIAGE_LEVELS:
        return f"triage level {a.get('triage')!r} is not one of {', '.join(TRIAGE_LEVELS)}"
    if not a.get("top") or not a.get("disclaimer"):
        return "no top classes or no disclaimer"
    if a.get("task") == "multiclass" and a.get("probabilities"):
        total = sum(a["probabilities"].values())
        if abs(total - 1) > 1e-3:
            return f"class probabilities sum to {total:.4f}"
    return ""


def _compare(got: dict[str, Any], want: dict[str, Any], atol: float) -> str:
    """'' when the served assessment is the local one, else the first difference."""
    for key in ("model", "task"):
        if got.get(key) != want.get(key):
            return f"{key}: served {got.get(key)!r}, the bundle {want.get(key)!r}"
    if got["triage"]["level"] != want["triage"]["level"]:
        return f"triage: served {got['triage']['level']}, the bundle {want['triage']['level']}"
    if got["top"][0]["id"] != want["top"][0]["id"]:
        return f"top class: served {got['top'][0]['id']}, the bundle {want['top'][0]['id']}"
    diff = max(abs(g["probability"] - w["probability"]) for g, w in zip(got["top"], want["top"], strict=False))
    return f"probabilities differ by {diff:.2g} (allowed {atol:g})" if diff > atol else ""


def _service(c: httpx.Client) -> tuple[list[SmokeCheck], list[dict[str, Any]]]:
    """The checks of health, readiness and the model list, and the models the service lists."""
    checks = []
    for path in ("/health", "/ready"):
        r = c.get(path)
        checks.append(SmokeCheck(f"GET {path}", r.status_code == 200, f"{r.status_code} {r.text[:200]}"))
    r = c.get("/v1/models")
    listed: list[dict[str, Any]] = r.json() if r.status_code == 200 else []
    checks.append(SmokeCheck("GET /v1/models", r.status_code == 200 and bool(listed),
                             f"{r.status_code}: {len(listed)} models" if r.status_code == 200
                             else f"{r.status_code} {r.text[:200]}"))
    return checks, listed


def smoke(url: str, *, api_key: str | None = None, models_dir: Path | None = None, atol: float = 2e-3,
          timeout: float = 30.0, client: httpx.Client | None = None) -> list[SmokeCheck]:
    """Every check, in order; the service passes when every ``ok`` is true. ``client``: an httpx-compatible
    client to use instead of one for ``url`` (tests pass the application's test client)."""
    c = client or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
    c.headers.update({"X-API-Key": api_key} if api_key else {})
    try:
        return _run(c, _local(models_dir), atol)
    except httpx.HTTPError as exc:
        return [SmokeCheck(f"reach {url}", False, f"{type(exc).__name__}: {exc}")]
    finally:
        if client is None:
            c.close()


def _run(c: httpx.Client, local: dict[str, Any], atol: float) -> list[SmokeCheck]:
    checks, models = _service(c)
    image_models = [m for m in models if m["task"] in ("multiclass", "multilabel")]
    if image_models:  # a known-bad input: refused with an error body, not answered and not a server error
        name = image_models[0]["name"]
        r = c.post(f"/v1/models/{name}/predict", files={"file": ("probe.png", b"this is not an image", "image/png")})
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        checks.append(SmokeCheck(f"bad input to {name} refused", 400 <= r.status_code < 500 and "error" in body,
                                 f"{r.status_code} {str(body.get('error', r.text))[:200]}"))
    for m in models:
        name = m["name"]
        if m["task"] == "signal":
            checks.append(SmokeCheck(f"{name}: ECG model", True, "not probed (it reads recordings: POST /v1/ecg)"))
            continue
        b = local.get(name)
        if m["task"] == "tabular":
            case = probe_case(m.get("inputs") or [])
            r = c.post(f"/v1/models/{name}/predict", json=case)
            want = b.assess(b.check(case))[0].model_dump(mode="json") if isinstance(b, TabularBundle) else None
        else:
            image = probe_image()
            r = c.post(f"/v1/models/{name}/predict", files={"file": ("probe.png", _png(image), "image/png")})
            want = (Engine(b).assess([image])[0][0].model_dump(mode="json") if isinstance(b, Bundle) else None)
        if r.status_code != 200:
            checks.append(SmokeCheck(f"{name}: probe answered", False, f"{r.status_code} {r.text[:300]}"))
            continue
        got = r.json()["assessment"]
        problem = _well_formed(got)
        if not problem and want is not None:
            problem = _compare(got, want, atol)
        what = "same answer as the local bundle" if want is not None else "well-formed answer (no local bundle to compare)"
        checks.append(SmokeCheck(f"{name}: {what}", not problem, problem or
                                 f"{got['triage']['level']}, top {got['top'][0]['id']} {got['top'][0]['probability']:.3f}"))
    missing = sorted(set(local) - {m["name"] for m in models})
    if missing:
        checks.append(SmokeCheck("every deployed bundle is served", False, f"not served: {', '.join(missing)}"))
    return checks
