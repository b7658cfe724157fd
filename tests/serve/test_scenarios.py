"""Scenarios: scripted conversations through /v1/chat, checked step by step, reported failures first."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from carelens.cli import app
from carelens.scenarios import Expect, load_scenarios
from carelens.scenarios._run import check_step

SCENARIOS = """
title: test scenarios
scenarios:
  - name: dog refused by the human chest model
    species: dog
    steps:
      - model: chest
        image: {generated: noise}
        expect: {status: 422, error_type: wrong_species}
  - name: downgrade refused
    species: human
    steps:
      - message: "high fever, chest pain and I cannot breathe"
        llm_answer: "Nothing to worry about, it can wait. This is not a diagnosis."
        expect: {explained_by: template, guardrail_failure_contains: lower urgency, triage_at_least: consultation}
  - name: an expectation that does not hold is reported
    species: human
    steps:
      - message: "hello"
        expect: {no_assessment: true}
      - message: "a cough"
        expect: {triage_at_least: emergency_ambulance}
"""


def test_check_step_reads_every_expectation() -> None:
    body = {"assessment": {"triage": {"level": "consultation"}, "flags": ["ambiguous"], "confidence": "possible",
                           "based_on": ["image"], "prediction_set": ["a", "b"], "findings": []},
            "explanation": "Book a visit. Not a diagnosis.", "explained_by": "template", "symptoms": None}
    checks = check_step(Expect(triage_at_least="consultation", triage_at_most="consultation_24",
                               flags_include=["ambiguous"], flags_exclude=["out_of_distribution"],
                               confidence_in=["possible"], prediction_set_include=["b"],
                               explanation_contains=["not a diagnosis"]), 200, body)
    assert all(ok for _, ok, _ in checks) and len(checks) == 8
    bad = check_step(Expect(triage_at_least="emergency", based_on_include=["symptoms"]), 200, body)
    assert [ok for _, ok, _ in bad] == [True, False, False]
    assert not check_step(Expect(status=422), 200, body)[0][1]


def test_cli_runs_scenarios_in_process_with_a_scripted_language_model(serve_dirs: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SCENARIOS)
    assert len(load_scenarios(f).scenarios) == 3
    res = CliRunner().invoke(app, ["scenarios", "run", str(f), "--models", str(serve_dirs["models"]),
                                   "--symptoms", str(serve_dirs["symptoms"]), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "2 of 3 scenarios passed" in res.output
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert {r["name"]: r["passed"] for r in results} == {
        "dog refused by the human chest model": True, "downgrade refused": True,
        "an expectation that does not hold is reported": False}
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.index("FAILED: an expectation") < html.index("PASSED: dog refused")  # failures first
    assert "triage at least emergency_ambulance" in html


def test_shipped_scenarios_are_valid() -> None:
    from importlib import resources

    doc = load_scenarios(Path(str(resources.files("carelens") / "scenarios" / "owner.yaml")))
    assert len(doc.scenarios) >= 20
    names = " ".join(s.name for s in doc.scenarios)
    for case in ("plan case 1", "plan case 2", "plan case 3", "downgrade", "times out", "unrelated photo", "blurry"):
        assert case in names
