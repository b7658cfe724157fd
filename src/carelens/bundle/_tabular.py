"""The clinical (tabular) bundle: a model of clinical measurements, in the same family as image bundles.

One ``bundle.json`` (``task: tabular``): the label spec (each outcome's triage level and advice), the input
schema (type, unit, accepted range or values, required or not, the friendlier names people send), the model
as plain JSON coefficients (:class:`~carelens.fusion.TabularModel`, no pickle), its temperature and conformal
thresholds, the decision settings it ships (``decision``: the critical-probability rule when the build chose it,
as an image bundle's), the cross-validated figures, a self-test (rows and the probabilities they must give) and an
integrity digest. It loads with numpy alone.

Format 2 added ``decision``: a format-2 bundle may escalate where a format-1 reader would not, so an older carelens
refuses it rather than apply the laxer rule; a format-1 bundle still loads, with the default policy.

Per-factor contributions: the model is linear in the encoded inputs, so each input's contribution to the
calibrated log-odds of an outcome is exact: Σ over its encoded columns of coef · (x - x̄) / T, where x̄ is the
training mean of the encoding (the "typical" patient). The contributions sum to the log-odds of this patient
minus those of the typical one.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from carelens.bundle._folder import bundle_folder
from carelens.bundle._manifest import DecisionParams, Identified, ManifestHead
from carelens.calibrate import ConformalClassifier, TemperatureScaler
from carelens.errors import BundleError, FactsError
from carelens.fusion import TabularModel, is_missing
from carelens.hashing import integrity_digest
from carelens.labels import LabelSpec, triage_rank
from carelens.policy import Assessment, DecisionPolicy, decide
from carelens.signing import verify_signature

__all__ = ["TABULAR_FORMAT", "Contribution", "InputField", "TabularBundle", "TabularSpec", "is_tabular",
           "write_tabular_bundle"]

TABULAR_FORMAT = 2  # 2 added ``decision`` (the critical-probability rule); 1 still loads


class InputField(BaseModel):
    """One input: what it is, its unit, what is accepted, and other names people send for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    type: Literal["number", "category"]
    description: str = ""
    unit: str = ""
    min: float | None = None
    max: float | None = None
    values: list[str] = Field(default_factory=list)  # category: the values the model knows
    value_names: dict[str, str] = Field(default_factory=dict)  # friendly value -> the model's value ("male" -> "1.0")
    required: bool = False
    aliases: list[str] = Field(default_factory=list)


class TabularSpec(ManifestHead):
    task: Literal["tabular"] = "tabular"
    inputs: list[InputField]
    model: dict[str, Any]  # TabularModel.to_dict()
    temperature: float
    conformal: dict[str, Any]  # ConformalClassifier.to_dict()
    baseline: list[float]  # training mean of the encoded inputs: the "typical" patient of the contributions
    decision: DecisionParams = Field(default_factory=DecisionParams)  # format 2; format 1: the defaults
    metrics: dict[str, Any] = Field(default_factory=dict)  # record: cross-validated figures
    training: dict[str, Any] = Field(default_factory=dict)  # record: data, folds, C
    selftest: dict[str, Any]  # {"rows": [...], "proba": [[...]]}
    versions: dict[str, str] = Field(default_factory=dict)
    integrity: str = ""


class Contribution(BaseModel):
    input: str
    value: Any
    log_odds: float = Field(description="how much this input moved the log-odds of the outcome, against a typical patient")
    effect: Literal["raises", "lowers", "no effect"]
    rating: Literal["negligible", "small", "moderate", "large"]


def _rating(x: float) -> Literal["negligible", "small", "moderate", "large"]:
    a = abs(x)
    return "negligible" if a < 0.1 else "small" if a < 0.5 else "moderate" if a < 1.0 else "large"


@dataclass
class TabularBundle(Identified):
    path: Path
    spec: TabularSpec
    model: TabularModel
    temperature: TemperatureScaler
    conformal: ConformalClassifier

    # -- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, selftest: bool = True,
             trusted_keys: dict[str, Ed25519PublicKey] | None = None) -> TabularBundle:
        """``trusted_keys``: when given, the bundle must be signed by one of them (as for image bundles)."""
        p = Path(path)
        f = p / "bundle.json" if p.is_dir() else p
        if not f.is_file():
            raise BundleError(f"{f} not found; build one with `carelens clinical build`")
        if trusted_keys is not None:
            verify_signature(f.parent, trusted_keys)
        raw = json.loads(f.read_text(encoding="utf-8"))
        if raw.get("task") != "tabular":
            raise BundleError(f"{f} is not a clinical (tabular) bundle")
        if raw.get("format_version") not in range(1, TABULAR_FORMAT + 1):
            raise BundleError(f"{f} has tabular format {raw.get('format_version')!r}; this carelens reads 1 to "
                              f"{TABULAR_FORMAT} (a newer carelens wrote it: upgrade carelens)")
        if raw.get("integrity") != integrity_digest(raw):
            raise BundleError(f"{f} was modified after it was built (integrity check failed); rebuild it")
        spec = TabularSpec.model_validate(raw)
        b = cls(f.parent, spec, TabularModel.from_dict(spec.model), TemperatureScaler.from_dict({"temperature": spec.temperature}),
                ConformalClassifier.from_dict(spec.conformal))
        if selftest:
            got = b.proba(spec.selftest["rows"])
            if not np.allclose(got, np.asarray(spec.selftest["proba"]), atol=1e-9):
                raise BundleError(f"{f}: the self-test rows give other probabilities than at build time")
        return b

    # -- inputs ----------------------------------------------------------------------------------------------
    def _by_name(self) -> dict[str, InputField]:
        out: dict[str, InputField] = {}
        for f in self.spec.inputs:
            out[f.name.lower()] = f
            out.update({a.lower(): f for a in f.aliases})
        return out

    def check(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row in the model's own names and values. Unknown inputs, values out of range or unknown, and
        missing required inputs are one FactsError naming every problem and what is accepted."""
        fields = self._by_name()
        out: dict[str, Any] = {}
        problems: list[str] = []
        given: set[str] = set()
        for key, v in row.items():
            f = fields.get(str(key).lower())
            if f is None:
                problems.append(f"unknown input {key!r}")
                continue
            given.add(f.name)
            if f.name in out:
                problems.append(f"{key!r} and another name both give {f.name!r}")
                continue
            if v is None or is_missing(v):
                continue
            if f.type == "number":
                x = v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
                if x is None:
                    try:
                        x = float(str(v))
                    except ValueError:
                        problems.append(f"{key} must be a number ({f.unit or 'no unit'}), got {v!r}")
                        continue
                if not math.isfinite(x) or (f.min is not None and x < f.min) or (f.max is not None and x > f.max):
                    problems.append(f"{key}={x:g} is outside the accepted range {f.min:g} to {f.max:g} {f.unit}".rstrip())
                    continue
                out[f.name] = float(x)
            else:
                s = _value_key(v)  # "Typical angina", "typical-angina": typical_angina
                by_value = {_value_key(c): c for c in f.values} | {_value_key(k): val for k, val in f.value_names.items()}
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    by_value |= {str(float(c)).lower(): c for c in f.values if _is_number(c) and float(c) == float(v)}
                match = by_value.get(s) or by_value.get(_as_float_text(s))
                if match is None:
                    names = ", ".join(list(f.value_names) or f.values)
                    problems.append(f"{key}={v!r} is not a value this model knows; use one of: {names}")
                    continue
                out[f.name] = match
        missing = [f.name for f in self.spec.inputs if f.required and f.name not in given]
        if missing:
            problems.append(f"missing required input(s): {', '.join(missing)}")
        if problems:
            raise FactsError("; ".join(problems) + f". Accepted inputs: {', '.join(f.name for f in self.spec.inputs)}")
        return out

    # -- predicting --------------------------------------------------------------------------------------------
    def logits(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.model.model_.decision_function(self.model.encoder_.transform(rows))

    def proba(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.asarray(self.temperature.predict_proba(self.logits(rows)))

    def contributions(self, row: Mapping[str, Any], outcome: int) -> list[Contribution]:
        """Each input's share of the calibrated log-odds of ``outcome`` (against the other outcomes' mean)."""
        enc = self.model.encoder_
        x = enc.transform([row])[0] - np.asarray(self.spec.baseline)
        coef = self.model.model_.coef_
        w = (coef[outcome] - np.delete(coef, outcome, axis=0).mean(0)) / self.temperature.temperature_
        names = enc.names
        out = []
        for f in self.spec.inputs:
            cols = [j for j, n in enumerate(names) if n == f.name or n.startswith((f"{f.name}_missing", f"{f.name}="))]
            c = float(np.dot(w[cols], x[cols]))
            effect: Literal["raises", "lowers", "no effect"] = "raises" if c > 1e-6 else "lowers" if c < -1e-6 else "no effect"
            out.append(Contribution(input=f.name, value=row.get(f.name), log_odds=round(c, 4), effect=effect,
                                    rating=_rating(c)))
        return sorted(out, key=lambda c: -abs(c.log_odds))

    @property
    def risk_outcome(self) -> int:
        """The outcome the contributions are about: the spec's most urgent one (the risk)."""
        classes = self.labels.classes
        return max(range(len(classes)), key=lambda i: (triage_rank(classes[i].triage), classes[i].is_critical, i))

    def policy(self, **overrides: Any) -> DecisionPolicy:
        """The decision policy the bundle ships (defaults for a format-1 bundle), with a deployment's overrides."""
        return self.spec.decision.policy(**overrides)

    def assess(self, row: Mapping[str, Any], policy: DecisionPolicy | None = None) -> tuple[Assessment, list[Contribution]]:
        """The assessment of one checked row (see :meth:`check`) and each input's contribution to the risk
        (:attr:`risk_outcome`); ``policy``: the bundle's own (:meth:`policy`) unless given."""
        p = self.proba([row])[0]
        mask = self.conformal.predict_set(p[None])[0]
        a = decide(p, mask, spec=self.labels, model=self.ref, coverage=1 - self.conformal.alpha,
                   policy=policy or self.policy(), based_on=("facts",))
        return a, self.contributions(row, self.risk_outcome)


def is_tabular(path: str | Path) -> bool:
    """Whether a bundle folder (or its bundle.json) holds a clinical (tabular) bundle; a .zip is an image bundle."""
    p = Path(path)
    f = p / "bundle.json" if p.is_dir() else p
    if f.suffix != ".json" or not f.is_file():
        return False
    try:
        return json.loads(f.read_text(encoding="utf-8")).get("task") == "tabular"  # type: ignore[no-any-return]
    except (OSError, ValueError, AttributeError):
        return False


def _value_key(v: Any) -> str:
    """A category value as matched: case, surrounding space and the separators people type (space, hyphen) aside;
    a number as written ("-1" stays negative)."""
    s = str(v).strip().lower()
    return s if _is_number(s) else "_".join(s.replace("-", " ").split())


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _as_float_text(s: str) -> str:
    return str(float(s)).lower() if _is_number(s) else s


def write_tabular_bundle(out: Path, *, name: str, version: str, spec: LabelSpec, inputs: Sequence[InputField],
                         model: TabularModel, temperature: TemperatureScaler, conformal: ConformalClassifier,
                         train_rows: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any],
                         training: Mapping[str, Any], intended_use: str = "", versions: Mapping[str, str] | None = None,
                         decision: DecisionParams | None = None) -> Path:
    """Write ``out/bundle.json`` (self-test rows: the first five training rows), built beside ``out`` and moved into
    place once written (:func:`bundle_folder`)."""
    rows = [dict(r) for r in train_rows[:5]]
    doc: dict[str, Any] = {
        "format_version": TABULAR_FORMAT, "task": "tabular", "name": name, "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "intended_use": intended_use,
        "label_spec": spec.model_dump(mode="json", by_alias=True), "class_ids": spec.class_ids,
        "inputs": [f.model_dump(mode="json") for f in inputs], "model": model.to_dict(),
        "temperature": float(temperature.temperature_), "conformal": conformal.to_dict(),
        "baseline": model.encoder_.transform(train_rows).mean(0).tolist(),
        "decision": (decision or DecisionParams()).model_dump(mode="json"), "metrics": dict(metrics),
        "training": dict(training), "versions": dict(versions or {}),
    }
    doc["selftest"] = {"rows": rows, "proba": temperature.predict_proba(
        model.model_.decision_function(model.encoder_.transform(rows))).tolist()}
    doc = json.loads(json.dumps(doc))  # the digest is over what is written: JSON types only
    doc["integrity"] = integrity_digest(doc)
    with bundle_folder(out) as building:
        (building / "bundle.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return out
