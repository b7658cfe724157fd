"""The shared decision vocabulary (no torch, no model): the assessment every prediction returns, the
safety-first decision policy that writes it, and the clinical metrics that measure its decisions."""

from carelens.policy._clinical import (
    CRITICAL_THRESHOLDS,
    URGENT,
    check_target,
    choose_decision_rule,
    choose_rule_by_levels,
    critical_miss_rate,
    level_agreement,
    ood_at_floor,
    over_triage_rate,
    rule_bound_text,
    rule_summary,
    triage_levels,
    triage_levels_by_threshold,
)
from carelens.policy._decision import DecisionPolicy, decide, decide_with_facts, keep_urgency
from carelens.policy._multilabel import (
    MultilabelDecision,
    decide_multilabel,
    multilabel_decision,
    required_levels,
    triage_grade,
)
from carelens.policy._schema import DISCLAIMER, Assessment, ClassProbability, Finding, ModelRef, TriageDecision

__all__ = [
    "CRITICAL_THRESHOLDS",
    "DISCLAIMER",
    "URGENT",
    "Assessment",
    "ClassProbability",
    "DecisionPolicy",
    "Finding",
    "ModelRef",
    "MultilabelDecision",
    "TriageDecision",
    "check_target",
    "choose_decision_rule",
    "choose_rule_by_levels",
    "critical_miss_rate",
    "decide",
    "decide_multilabel",
    "decide_with_facts",
    "keep_urgency",
    "level_agreement",
    "multilabel_decision",
    "ood_at_floor",
    "over_triage_rate",
    "required_levels",
    "rule_bound_text",
    "rule_summary",
    "triage_grade",
    "triage_levels",
    "triage_levels_by_threshold",
]
