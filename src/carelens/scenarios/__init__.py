"""Scripted end-to-end scenarios against the service: inputs (messages, photos, facts, species, what a
language model will answer) and what must hold (triage at least X, a flag present, a species refused ...),
run in order through ``/v1/chat`` and written up as an HTML report with every exchange, failures first."""

from carelens.scenarios._model import Expect, Scenario, ScenarioFile, Step, load_scenarios
from carelens.scenarios._report import write_scenario_report
from carelens.scenarios._run import ScenarioResult, StepResult, run_scenarios
from carelens.scenarios._scripted_llm import ScriptedLlm, scripted_llm

__all__ = ["Expect", "Scenario", "ScenarioFile", "ScenarioResult", "ScriptedLlm", "Step", "StepResult",
           "load_scenarios", "run_scenarios", "scripted_llm", "write_scenario_report"]
