"""The scenario report: a self-contained HTML page, failures first, every exchange shown."""

from __future__ import annotations

import html
import json
from pathlib import Path

from carelens.scenarios._run import ScenarioResult, StepResult

__all__ = ["write_scenario_report"]

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#1d2433}
.card{border:1px solid #d5dbe5;border-radius:8px;padding:10px 14px;margin:12px 0}.fail{border-left:6px solid #b42318}
.pass{border-left:6px solid #1a7f37}.skip{border-left:6px solid #a0a7b4}td,th{padding:3px 8px;text-align:left;vertical-align:top}
.ok{color:#1a7f37}.bad{color:#b42318;font-weight:600}pre{white-space:pre-wrap;background:#f5f7fa;padding:6px;font-size:12px}"""


def _step_html(n: int, s: StepResult) -> str:
    a = s.body.get("assessment") or {}
    rows = "".join(f"<tr><td class=\"{'ok' if ok else 'bad'}\">{'held' if ok else 'FAILED'}</td><td>{html.escape(w)}</td>"
                   f"<td>{html.escape(d)}</td></tr>" for w, ok, d in s.checks)
    summary = (f"triage <b>{html.escape(a['triage']['level'])}</b> ({html.escape(a['triage']['reason'])}); "
               f"confidence {a['confidence']}; flags {', '.join(a['flags']) or 'none'}; based on {', '.join(a['based_on'])}"
               if a else "no assessment")
    skipped = f"<p><i>skipped: {html.escape(s.skipped)}</i></p>" if s.skipped else ""
    return (f"<h4>Step {n}: {html.escape(s.message or '(no words)')}{' + ' + html.escape(s.image) if s.image else ''}</h4>"
            f"{skipped}<p>HTTP {s.status}: {summary}</p>"
            f"<p><b>Answer</b> ({html.escape(str(s.body.get('explained_by', '')))}): "
            f"{html.escape(str(s.body.get('explanation') or s.body.get('error') or ''))}</p>"
            f"<table>{rows}</table><details><summary>response</summary><pre>"
            f"{html.escape(json.dumps({k: v for k, v in s.body.items() if k != 'heatmap_png'}, indent=1)[:6000])}</pre></details>")


def write_scenario_report(results: list[ScenarioResult], out: str | Path, title: str = "scenarios") -> Path:
    """report.html and results.json in ``out``; failing scenarios first."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(results, key=lambda r: (r.passed, r.skipped))
    passed = sum(r.passed for r in results)
    cards = []
    for r in ordered:
        cls = "skip" if r.skipped else ("pass" if r.passed else "fail")
        steps = "".join(_step_html(i + 1, s) for i, s in enumerate(r.steps))
        cards.append(f'<div class="card {cls}"><h3>{"PASSED" if r.passed else ("SKIPPED" if r.skipped else "FAILED")}: '
                     f"{html.escape(r.name)}</h3><p>{html.escape(r.why)}"
                     f"{' (species ' + html.escape(r.species) + ')' if r.species else ''}</p>{steps}</div>")
    doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
           f"<p>{passed} of {len(results)} scenarios passed; failures first. Not a diagnosis: these check the "
           f"system's behaviour, not clinical accuracy.</p>{''.join(cards)}</body></html>")
    (folder / "report.html").write_text(doc, encoding="utf-8")
    (folder / "results.json").write_text(json.dumps(
        [{"name": r.name, "passed": r.passed, "skipped": r.skipped,
          "steps": [{"message": s.message, "image": s.image, "status": s.status, "passed": s.passed, "skipped": s.skipped,
                     "checks": [{"check": w, "held": ok, "detail": d} for w, ok, d in s.checks]} for s in r.steps]}
         for r in results], indent=1))
    return folder / "report.html"
