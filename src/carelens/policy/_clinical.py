"""Clinical decision metrics: what the triage decisions cost, measured on labelled cases.

Safety is measured together with its price. The **critical-miss rate** is the share of cases of a
critical class (severity high or critical) triaged below their class's level, and never less than
``consultation_24`` (a melanoma sent to a routine visit; a heart attack answered within a day); the
**over-triage rate** is the share of cases whose true class triages at ``consultation`` or below that the
decision sends to ``consultation_24`` or above. Escalating everyone gives a zero critical-miss rate and an over-triage rate
of one: no triage at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from carelens.errors import ConfigError
from carelens.labels import TRIAGE_LEVELS, LabelSpec, triage_rank
from carelens.metrics import rate_upper_bound
from carelens.policy._decision import URGENT, DecisionPolicy, decide_with_facts, triage_level
from carelens.policy._multilabel import required_levels
from carelens.policy._schema import ModelRef

__all__ = ["CRITICAL_THRESHOLDS", "URGENT", "check_target", "choose_decision_rule", "choose_rule_by_levels",
           "critical_miss_rate", "level_agreement", "ood_at_floor", "over_triage_rate", "rule_bound_text", "rule_summary",
           "triage_levels", "triage_levels_by_threshold"]


def triage_levels(proba: np.ndarray, in_set: np.ndarray, in_distribution: np.ndarray, spec: LabelSpec, *,
                  policy: DecisionPolicy | None = None,
                  fused: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[str]:
    """The triage level the decision policy gives each case.

    Args:
        proba: (n, k) calibrated image probabilities; in_set: (n, k) their conformal sets;
            in_distribution: (n,) the OOD gate's verdicts.
        fused: (probabilities, sets, conflicts) of image + clinical facts, to measure that decision instead
            (:func:`~carelens.policy.decide_with_facts`).
    """
    if fused is None:
        return [triage_level(proba[n], in_set[n], spec=spec, in_distribution=bool(in_distribution[n]), policy=policy)
                for n in range(len(proba))]
    ref = ModelRef(name=spec.name, version="eval")
    return [decide_with_facts(proba[n], in_set[n], fused[0][n], fused[1][n], conflict=bool(fused[2][n]), spec=spec,
                              model=ref, coverage=0.0, in_distribution=bool(in_distribution[n]),
                              policy=policy).triage.level for n in range(len(proba))]


def triage_levels_by_threshold(proba: np.ndarray, in_set: np.ndarray, in_distribution: np.ndarray, spec: LabelSpec,
                               thresholds: Sequence[float]) -> dict[float, list[str]]:
    """:func:`triage_levels` under the critical-probability rule at each of ``thresholds``, from two evaluations of
    the decision instead of one per threshold: a case escalates exactly when its critical classes' summed
    probability reaches the threshold, and what it escalates to (or, below it, what the rest of the decision gives)
    does not depend on the threshold itself. So each case's level at ``t`` is its level at the smallest threshold
    when that sum is at least ``t``, else its level at the largest."""
    if not thresholds:
        return {}
    lo, hi = min(thresholds), max(thresholds)
    escalated = triage_levels(proba, in_set, in_distribution, spec, policy=DecisionPolicy(critical_threshold=lo))
    not_escalated = triage_levels(proba, in_set, in_distribution, spec, policy=DecisionPolicy(critical_threshold=hi))
    crit = spec.critical_indices
    # the sum exactly as the decision forms it (policy._decision._core), case by case
    p_crit = np.asarray([float(np.asarray(p, dtype=np.float64)[crit].sum()) if crit else 0.0 for p in proba])
    return {t: [e if pc >= t else n for e, n, pc in zip(escalated, not_escalated, p_crit, strict=True)]
            for t in thresholds}


def _own_ranks(y: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """Each labelled case's own triage rank: its class's (multi-label: its most urgent true finding's, or
    ``self_care`` with none, :func:`required_levels`)."""
    if spec.multilabel:
        return np.asarray([triage_rank(lv) for lv in required_levels(y, spec)], dtype=int)
    by_class = np.asarray([triage_rank(c.triage) for c in spec.classes], dtype=int)
    return np.asarray(by_class[np.asarray(y, dtype=int)])


def _given_ranks(levels: Sequence[str], n: int) -> np.ndarray:
    if len(levels) != n:
        raise ValueError(f"{len(levels)} triage levels for {n} labelled cases")
    return np.asarray([triage_rank(lv) for lv in levels], dtype=int)


def _critical_rows(y: np.ndarray, spec: LabelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(each case's own triage rank, the mask of critical cases: of a critical class; multi-label, whose true
    findings need ``consultation_24`` or more)."""
    own = _own_ranks(y, spec)
    return own, (own >= triage_rank(URGENT) if spec.multilabel else np.isin(np.asarray(y), spec.critical_indices))


def critical_miss_rate(levels: Sequence[str], y: np.ndarray, spec: LabelSpec) -> float:
    """Share of critical cases (``spec.critical_indices``; multi-label: those whose true findings need
    ``consultation_24`` or more) triaged below their own level or below ``consultation_24``, whichever is more
    urgent (DESIGN.md: "critical cases triaged below their level"); NaN if none. Below ``consultation_24`` alone
    could not see a heart attack answered within a day, nor a colic horse at risk of death answered as anything but
    an emergency."""
    own, rows = _critical_rows(y, spec)
    if not rows.any():
        return float("nan")
    return float((_given_ranks(levels, len(own)) < np.maximum(own, triage_rank(URGENT)))[rows].mean())


def over_triage_rate(levels: Sequence[str], y: np.ndarray, spec: LabelSpec) -> float:
    """Share of routine cases (``spec.routine_indices``: own triage below ``consultation_24``) sent to
    ``consultation_24`` or above; NaN if there are none. Multi-label: the cases whose true findings (or none)
    need less than ``consultation_24``."""
    bar = triage_rank(URGENT)
    rows = _own_ranks(y, spec) < bar if spec.multilabel else np.isin(np.asarray(y), spec.routine_indices)
    if not rows.any():
        return float("nan")
    return float((np.asarray([triage_rank(lv) for lv in levels])[rows] >= bar).mean())


def level_agreement(levels: Sequence[str], y: np.ndarray, spec: LabelSpec) -> dict[str, Any]:
    """Every decision against the case's own triage level, as triage studies tabulate it: ``counts[own][given]``
    over :data:`~carelens.labels.TRIAGE_LEVELS`, and the shares of cases given their own level, a less urgent one
    (under-triage) and a more urgent one. The over-triage rate counts only routine cases sent to
    ``consultation_24`` or above; this also sees an urgent case sent to an ambulance, or a self-care case sent to a
    routine consultation. A share without cases is None."""
    r_own = _own_ranks(y, spec)
    r_given = _given_ranks(levels, len(r_own))
    counts = np.zeros((len(TRIAGE_LEVELS), len(TRIAGE_LEVELS)), dtype=int)
    np.add.at(counts, (r_own, r_given), 1)

    def share(mask: np.ndarray) -> float | None:  # None, not NaN: the dict goes to JSON as it is
        return float(mask.mean()) if len(mask) else None

    return {"levels": list(TRIAGE_LEVELS), "counts": counts.tolist(), "same_level_rate": share(r_given == r_own),
            "below_own_level_rate": share(r_given < r_own), "above_own_level_rate": share(r_given > r_own)}


def ood_at_floor(levels: Sequence[str], in_distribution: np.ndarray, floor: str) -> list[str]:
    """The levels had out-of-distribution input been answered at ``floor`` alone, as DESIGN.md words it, instead of
    the shipped rule (at least the floor, never lowered: an urgent-looking finding on an unusual image still
    escalates). Measuring both rates on these levels says what that rule buys and costs."""
    if len(levels) != len(in_distribution):
        raise ValueError(f"{len(levels)} levels but {len(in_distribution)} out-of-distribution verdicts")
    triage_rank(floor)  # a LabelSpecError naming the levels, for an unknown one
    return [lv if bool(ok) else floor for lv, ok in zip(levels, in_distribution, strict=True)]


CRITICAL_THRESHOLDS = tuple(round(t, 3) for t in np.r_[np.arange(0.01, 0.1, 0.01), np.arange(0.1, 0.55, 0.05)])


def check_target(target: float) -> float:
    """``target`` if it can be a critical-miss target (in [0, 1)), else a ConfigError saying so: for checking a
    command's option before the work that needs it."""
    if not 0 <= target < 1:
        raise ConfigError(f"the critical-miss target must be in [0, 1), got {target}")
    return target


def choose_decision_rule(pv: np.ndarray, y: np.ndarray, in_val: np.ndarray, sets: np.ndarray, spec: LabelSpec,
                         test: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None, *,
                         target: float = 0.02) -> dict[str, Any]:
    """The set rule (the most urgent class in the conformal set decides) against the critical-probability rule
    (escalate when the critical classes' summed probability reaches a threshold), on labelled held-out cases, for
    multi-class models (:func:`choose_rule_by_levels` chooses). Every multi-class bundle kind chooses its rule here:
    image models on validation (``carelens calibrate``), clinical tables and symptom tables on their held-out rows.

    Args:
        pv, y, in_val: calibrated probabilities, labels and OOD verdicts of the cases the rule is chosen on.
        sets: their conformal sets, cross-fitted (no case's set from thresholds fitted on itself).
        test: (probabilities, sets, OOD verdicts, labels) of a test split: every candidate measured there, for
            the report only.
    """

    def levels(proba: np.ndarray, m: np.ndarray, ind: np.ndarray) -> dict[float | None, list[str]]:
        by_rule: dict[float | None, list[str]] = {None: triage_levels(proba, m, ind, spec)}
        by_rule.update(triage_levels_by_threshold(proba, m, ind, spec, CRITICAL_THRESHOLDS).items())
        return by_rule

    return choose_rule_by_levels(levels(pv, sets, in_val), y, spec,
                                 None if test is None else (levels(*test[:3]), test[3]), target=target)


def choose_rule_by_levels(val: Mapping[float | None, Sequence[str]], y: np.ndarray, spec: LabelSpec,
                          test: tuple[Mapping[float | None, Sequence[str]], np.ndarray] | None = None, *,
                          target: float = 0.02) -> dict[str, Any]:
    """The decision rule, from the levels each candidate gives labelled held-out cases: ``None`` (the set rule:
    multi-class, the most urgent class in the conformal set; multi-label, the conditions present or kept) and each
    critical-probability threshold of :data:`CRITICAL_THRESHOLDS`. Chosen: among the rules whose critical-miss rate
    there is at most ``target``, the one with the lowest over-triage (the set rule on a tie); when no rule meets the
    target, the one that misses fewest critical cases (then the lowest over-triage; ``met_on_val`` says so); where
    no outcome is routine (horse colic: every outcome needs consultation_24 or more), the lowest
    share of cases given more than their own level. Each candidate's validation row also carries the exact 95%
    upper bound of its critical-miss rate (``critical_miss_upper95``; ``val_critical_cases`` says how many critical
    cases there were): 0 misses among 30 allows 0.095. ``test``: (levels per candidate, labels) of a test split,
    measured for the report only."""
    check_target(target)
    candidates: list[float | None] = [None, *CRITICAL_THRESHOLDS]
    if set(val) != set(candidates) or (test is not None and set(test[0]) != set(candidates)):
        raise ConfigError("levels are needed for the set rule (None) and every threshold of CRITICAL_THRESHOLDS")

    def rates(by_rule: Mapping[float | None, Sequence[str]], yy: np.ndarray) -> dict[float | None, dict[str, float]]:
        return {t: {"critical_miss_rate": critical_miss_rate(levels, yy, spec),
                    "over_triage_rate": over_triage_rate(levels, yy, spec),
                    "above_own_level_rate": level_agreement(levels, yy, spec)["above_own_level_rate"]}
                for t, levels in by_rule.items()}

    def cost(r: dict[str, float]) -> float:
        return r["above_own_level_rate"] if np.isnan(r["over_triage_rate"]) else r["over_triage_rate"]

    on_val = rates(val, y)
    n_critical = int(_critical_rows(y, spec)[1].sum())
    for r in on_val.values():  # what so few critical cases still allow: 0 misses of 30 is a rate up to 0.095
        rate = r["critical_miss_rate"]
        r["critical_miss_upper95"] = float("nan") if np.isnan(rate) else rate_upper_bound(round(rate * n_critical),
                                                                                           n_critical)
    meeting = [t for t in candidates if on_val[t]["critical_miss_rate"] <= target]
    if meeting:
        chosen = min(meeting, key=lambda t: (cost(on_val[t]), t is not None, -(t or 0)))
    else:  # safety first: the rule that misses fewest critical cases, at the lowest cost among those
        graded = [t for t in candidates if not np.isnan(on_val[t]["critical_miss_rate"])]
        chosen = min(graded, key=lambda t: (on_val[t]["critical_miss_rate"], cost(on_val[t]), t is not None,
                                            -(t or 0))) if graded else None
    out: dict[str, Any] = {
        "target_critical_miss_rate": target, "chosen": "set" if chosen is None else "critical_probability",
        "critical_threshold": chosen, "met_on_val": bool(meeting), "val_critical_cases": n_critical,
        "critical_miss_upper95_val": on_val[chosen]["critical_miss_upper95"],
        "val": [{"critical_threshold": t, **on_val[t]} for t in candidates],
    }
    if test is not None:
        on_test = rates(*test)
        out["test"] = [{"critical_threshold": t, **on_test[t]} for t in candidates]
    return out


def rule_bound_text(rule: Mapping[str, Any]) -> str:
    """What the cases a rule was chosen on allow, in words: how many critical cases, and the shipped rule's
    critical-miss rate at 95% confidence ("" for a rule recorded before the bound was, or without critical cases)."""
    ub, n = rule.get("critical_miss_upper95_val"), rule.get("val_critical_cases")
    if ub is None or n is None or np.isnan(ub):
        return ""
    return f"{n} critical cases chose it: its miss rate is at most {ub:.3f} with 95% confidence"


def rule_summary(rule: dict[str, Any]) -> dict[str, Any]:
    """What a bundle records of the rule :func:`choose_decision_rule` chose: which, its threshold, the target, and
    whether any rule met it (not every candidate's figures)."""
    return {k: rule[k] for k in ("chosen", "critical_threshold", "target_critical_miss_rate", "met_on_val",
                                 "val_critical_cases", "critical_miss_upper95_val", "chosen_on") if k in rule}
