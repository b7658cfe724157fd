"""Running scenarios through ``/v1/chat`` of a service (in-process or over HTTP) and checking each step."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageFilter

from carelens.data import read_image, synthetic_skin_image
from carelens.labels import triage_rank
from carelens.scenarios._model import Expect, ImageSpec, ScenarioFile, Step
from carelens.scenarios._scripted_llm import ScriptedLlm
from carelens.settings import data_root

__all__ = ["Client", "ScenarioResult", "StepResult", "check_step", "run_scenarios"]


class Client(Protocol):
    """An httpx.Client on a running service, or FastAPI's TestClient on an in-process one."""

    def post(self, url: str, *, data: Any = ..., files: Any = ...) -> Any: ...


@dataclass
class StepResult:
    message: str
    image: str | None
    status: int
    body: dict[str, Any]
    checks: list[tuple[str, bool, str]]  # (what, held, detail)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return self.skipped is None and all(ok for _, ok, _ in self.checks)


@dataclass
class ScenarioResult:
    name: str
    why: str
    species: str | None
    steps: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.steps)

    @property
    def skipped(self) -> bool:
        return any(s.skipped for s in self.steps)


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def make_image(spec: ImageSpec, root: Path) -> tuple[bytes, str]:
    """(PNG bytes, a short description) of a step's photo."""
    if spec.skin is not None:
        return _png(synthetic_skin_image(spec.skin)), "generated skin: " + ", ".join(f"{c} {s}" for c, s in spec.skin.items())
    if spec.generated == "blank":
        return _png(np.full((224, 224, 3), 255, np.uint8)), "blank white image"
    if spec.generated == "noise":
        return _png(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)), "random noise"
    if spec.data is None:
        raise ValueError("an image needs data, generated or skin")
    img = read_image(root / spec.data)
    if spec.generated == "blur":
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=max(img.shape[:2]) / 10)))
        return _png(img), f"heavy blur of {spec.data}"
    return _png(img), spec.data


def check_step(e: Expect, status: int, body: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Every expectation of a step, checked against the response."""
    out: list[tuple[str, bool, str]] = [("status", status == e.status, f"got {status}, want {e.status}")]
    if status != 200:
        if e.error_type:
            got = (body.get("error") or {}).get("type")
            out.append(("error type", got == e.error_type, f"got {got}, want {e.error_type}"))
        return out
    a = body.get("assessment")
    if e.no_assessment:
        out.append(("no assessment yet", a is None, "an assessment came back" if a else ""))
    if e.explained_by:
        out.append(("explained by", body.get("explained_by") == e.explained_by, f"got {body.get('explained_by')}"))
    text = (body.get("explanation") or "").lower()
    for w in e.explanation_contains:
        out.append((f"explanation mentions {w!r}", w.lower() in text, ""))
    if e.guardrail_failure_contains:
        fails = body.get("guardrail_failures") or []
        out.append((f"guardrail refused: {e.guardrail_failure_contains}",
                    any(e.guardrail_failure_contains in f for f in fails), "; ".join(fails) or "none"))
    wants_assessment = any([e.triage_at_least, e.triage_at_most, e.flags_include, e.flags_exclude, e.confidence_in,
                            e.based_on_include, e.symptoms_present_include, e.symptoms_absent_include,
                            e.findings_include, e.prediction_set_include])
    if not wants_assessment:
        return out
    if a is None:
        return [*out, ("an assessment", False, "none came back")]
    level = a["triage"]["level"]
    if e.triage_at_least:
        out.append((f"triage at least {e.triage_at_least}", triage_rank(level) >= triage_rank(e.triage_at_least), level))
    if e.triage_at_most:
        out.append((f"triage at most {e.triage_at_most}", triage_rank(level) <= triage_rank(e.triage_at_most), level))
    for f in e.flags_include:
        out.append((f"flag {f}", f in a["flags"], ", ".join(a["flags"]) or "no flags"))
    for f in e.flags_exclude:
        out.append((f"no flag {f}", f not in a["flags"], ", ".join(a["flags"]) or "no flags"))
    if e.confidence_in:
        out.append((f"confidence in {e.confidence_in}", a["confidence"] in e.confidence_in, a["confidence"]))
    for s in e.based_on_include:
        out.append((f"based on {s}", s in a["based_on"], ", ".join(a["based_on"])))
    sym = body.get("symptoms") or {}
    for s in e.symptoms_present_include:
        out.append((f"symptom {s} understood", s in (sym.get("present") or []), ", ".join(sym.get("present") or [])))
    for s in e.symptoms_absent_include:
        out.append((f"symptom {s} understood as absent", s in (sym.get("absent") or []), ", ".join(sym.get("absent") or [])))
    present = [f["id"] for f in a.get("findings") or [] if f["present"]]
    for f in e.findings_include:
        out.append((f"finding {f}", f in present, ", ".join(present) or "none"))
    for c in e.prediction_set_include:
        out.append((f"{c} in the plausible set", c in a["prediction_set"], ", ".join(a["prediction_set"])))
    return out


def run_scenarios(doc: ScenarioFile, client: Client, *, llm: ScriptedLlm | None = None,
                  data: Path | None = None) -> list[ScenarioResult]:
    """Each scenario as one conversation. Steps that script the language model are skipped without ``llm``."""
    root = data or data_root()
    results = []
    for sc in doc.scenarios:
        res = ScenarioResult(sc.name, sc.why, sc.species)
        session: str | None = None
        for step in sc.steps:
            res.steps.append(_run_step(step, sc.species, session, client, llm, root))
            session = res.steps[-1].body.get("session_id", session)
        results.append(res)
    return results


def _run_step(step: Step, species: str | None, session: str | None, client: Client, llm: ScriptedLlm | None,
              root: Path) -> StepResult:
    if step.llm_answer is not None and llm is None:
        return StepResult(step.message, None, 0, {}, [], skipped="needs the scripted language model (--models mode)")
    if llm is not None:
        llm.script.clear()
        if step.llm_answer is not None:
            llm.answer(step.llm_answer, step.llm_delay_s)
    form: dict[str, str] = {"message": step.message}
    for key, value in (("session_id", session), ("species", species), ("model", step.model)):
        if value:
            form[key] = value
    if step.facts:
        form["facts"] = json.dumps(step.facts)
    files = None
    described = None
    if step.image is not None:
        png, described = make_image(step.image, root)
        files = {"image": ("photo.png", png, "image/png")}
    r = client.post("/v1/chat", data=form, files=files)
    try:
        body = r.json()
    except ValueError:
        body = {"raw": r.text[:500]}
    return StepResult(step.message, described, r.status_code, body, check_step(step.expect, r.status_code, body))
