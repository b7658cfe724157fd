"""bundle.json: the self-description of a model bundle (pydantic; no torch).

Every section carelens reads back is typed: the label spec, the preprocessing, the model's inputs and
outputs, the conformal thresholds, the OOD gate's parameters, the split and the facts fusion. The
remaining sections (test metrics, calibration figures, training recipe, library versions, export parity)
are records for people and tools; carelens writes them and never decides anything from them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from carelens.hashing import integrity_digest
from carelens.labels import LabelSpec
from carelens.policy import DecisionPolicy, ModelRef
from carelens.preprocess import PreprocessConfig

__all__ = [
    "FORMAT_VERSION",
    "HEAD_FILE",
    "OLDEST_READABLE_FORMAT",
    "REQUIRED_FILES",
    "BundleSpec",
    "ConformalParams",
    "DecisionParams",
    "FactsSection",
    "ModelIO",
    "MultilabelParams",
    "OODParams",
    "SelfTest",
    "SplitInfo",
    "bundle_identity",
]

FORMAT_VERSION = 13  # 2 added the optional ``facts`` section; 3 the multi-label task (``multilabel`` section); 4
# ``decision.critical_threshold`` (a decision rule an older carelens would not apply: it must refuse the bundle);
# 5 ``temperature_bias`` (per-class offsets after the temperature, which an older carelens would ignore); 6 models
# without a feature map (``model_io.fmap`` empty, no ``head.npz``: an imported ONNX classifier; no heatmaps), and
# ``model_io.outputs`` naming the graph's own outputs (logits, then what the OOD gate reads); 7 ``model_io.views``
# (``flips``: the graph averages each image with its mirror images; a field an older carelens does not know); 8
# ``ood.confidence`` (the gate's threshold holds its pass rate with that probability over the validation draw); 9
# ``decision.finding_weights`` (the class called is the highest probability x weight; an older carelens would call
# another class: it must refuse the bundle); 10 ``model_io.members`` (the graph averages that many trained models:
# a field an older carelens does not know); 11 ``temperature_scale`` (vector scaling: a multiplier per class after
# the temperature, which an older carelens would ignore); 12 ``conformal.pooled`` (classes sharing one threshold: a
# field an older carelens does not know) and ``model_io.views`` "dihedral" (a value it does not know); 13
# ``ood.components`` (the gate's covariance modelled as probabilistic PCA of that many directions, its statistics in
# ood.npz as ``basis``, ``inv_var`` and ``residual_var``, which an older carelens cannot read)
OLDEST_READABLE_FORMAT = 1  # a format-1 bundle is a format-2 bundle without facts, a format-2 one is multiclass
REQUIRED_FILES = frozenset({"model.onnx", "ood.npz"})  # every one listed in ``files`` with its sha256; and
HEAD_FILE = "head.npz"  # the classifier head's weights, for heatmaps: required when the model gives a feature map


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SelfTest(_Section):
    seed: int
    shape: list[int]
    logits: list[list[float]]
    atol: float = 1e-3


class ModelIO(_Section):
    """The ONNX graph's input name and outputs: logits, the pooled features the OOD gate reads, and the last
    feature map (heatmaps). An imported model may have no feature map (``fmap`` empty, two outputs), and no
    features either: then its second output is its logits again (the OOD gate reads the logits)."""

    input: str
    outputs: list[str]
    opset: int
    features: int  # width of the pooled features
    fmap: list[int]  # (C, h, w) of the feature map; empty: none
    # flips: the graph averages each image with its two mirror images; dihedral: over the 8 symmetries of the square
    views: Literal["flips", "dihedral"] | None = None
    # an ensemble: the logits are the mean of this many trained models' (features: the first one's; fmap: theirs
    # stacked along the channels, read with their heads side by side, each / members); None: one model
    members: int | None = Field(None, ge=2)


class ConformalParams(_Section):
    """:meth:`carelens.calibrate.ConformalClassifier.to_dict`."""

    alpha: float
    score: Literal["lac", "aps"]
    class_conditional: bool
    pooled: list[int] | None = None  # classes sharing one threshold (absent: each its own; format 12)
    thresholds: list[float]
    marginal_threshold: float
    fallback_classes: list[int]
    min_per_class: int
    class_counts: list[int]


class MultilabelParams(_Section):
    """A multi-label model's output layout and :meth:`carelens.calibrate.MultilabelCalibrator.to_dict`."""

    severity_head: Literal["softmax", "ordinal"]
    severity_sizes: list[int]
    alpha: float
    temperatures: list[float]
    thresholds: list[float]
    risk_threshold: float
    n: int
    val_fnr: float
    recall_floor: dict[str, float] = Field(default_factory=dict)

    def calibrator_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude={"severity_head", "severity_sizes"})


_DEFAULT = DecisionPolicy()


class DecisionParams(_Section):
    """The decision settings the model ships with (:class:`carelens.policy.DecisionPolicy`); a deployment may
    override them (serve settings ``CARELENS_DECISION_*``)."""

    likely: float = _DEFAULT.likely
    possible: float = _DEFAULT.possible
    ambiguous_margin: float = _DEFAULT.ambiguous_margin
    floor_when_unsure: Literal["self_care", "consultation", "consultation_24", "emergency",
                               "emergency_ambulance"] = _DEFAULT.floor_when_unsure  # type: ignore[assignment]
    top_k: int = _DEFAULT.top_k
    severity_floor: float = _DEFAULT.severity_floor
    critical_threshold: float | None = None  # the critical-probability rule, when calibrate chose it on validation
    finding_weights: list[float] | None = None  # the class called: probability x weight (calibrate's choice)

    def policy(self, **overrides: Any) -> DecisionPolicy:
        """The policy, with any non-None override applied (ConfigError for an inconsistent one);
        ``critical_threshold="off"`` turns the critical-probability rule off: the set rule decides."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("critical_threshold") == "off":
            given["critical_threshold"] = None
        return DecisionPolicy(**{**self.model_dump(), **given})


class OODParams(_Section):
    """:meth:`carelens.calibrate.OODGate.to_dict`; its statistics are in ``ood.npz``."""

    method: Literal["mahalanobis", "knn", "combined"]
    pass_rate: float
    k: int
    use_energy: bool
    threshold: float
    # the probability over the validation draw that the threshold passes pass_rate (None: a plain quantile)
    confidence: float | None = None
    # the leading directions of the covariance modelled one by one, the rest sharing one variance (None: all of them)
    components: int | None = None


class SplitInfo(_Section):
    """How train/val/test were made, and a digest of the assignment (to check a re-made split)."""

    strategy: str
    seed: int
    fractions: list[float]
    data_fingerprint: str
    assignment_sha256: str
    counts: dict[str, dict[str, int]] | None = None


class FactsSection(_Section):
    """The clinical facts fused with the image: the fitted fusion, what each fact may be, test figures."""

    fusion: dict[str, Any]  # carelens.fusion.FactsFusion.to_dict()
    schema_: dict[str, dict[str, Any]] = Field(alias="schema")
    test: dict[str, Any] | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class BundleSpec(BaseModel):
    """Everything needed to preprocess, run and decide, and to know what the model is."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    format_version: int
    name: str
    version: str
    task: Literal["multiclass", "multilabel"] = "multiclass"
    created: str
    intended_use: str = ""
    label_spec: LabelSpec
    class_ids: list[str]
    preprocess: PreprocessConfig
    model_io: ModelIO
    temperature: float = 1.0  # multiclass; a multi-label model has one per condition in ``multilabel``
    temperature_bias: list[float] | None = None  # multiclass, when chosen on validation (calibrate.choose_scaler)
    temperature_scale: list[float] | None = None  # multiclass vector scaling (with ``temperature_bias``), likewise
    conformal: ConformalParams | None = None  # multiclass: conformal prediction sets
    multilabel: MultilabelParams | None = None  # multi-label: layout, thresholds, conformal risk control
    decision: DecisionParams | None = None  # the shipped decision settings (bundles before format 3: the defaults)
    ood: OODParams
    test_metrics: dict[str, Any] = Field(default_factory=dict)  # record
    calibration: dict[str, Any] = Field(default_factory=dict)  # record
    data_fingerprint: str
    training_config: dict[str, Any]  # record: the TrainConfig the model was trained with
    versions: dict[str, str]  # record
    selftest: SelfTest
    parity: dict[str, Any] = Field(default_factory=dict)  # record: ONNX Runtime vs PyTorch at export
    split: SplitInfo | None = None
    facts: FactsSection | None = None
    files: dict[str, str]  # name -> sha256
    integrity: str = ""  # sha256 of this document without this field

    @model_validator(mode="after")
    def _task_sections(self) -> BundleSpec:
        if self.task == "multiclass" and self.conformal is None:
            raise ValueError("a multiclass bundle needs its `conformal` section")
        if self.task == "multilabel" and self.multilabel is None:
            raise ValueError("a multilabel bundle needs its `multilabel` section")
        if self.label_spec.task != self.task:
            raise ValueError(f"the label spec is {self.label_spec.task} but the bundle says {self.task}")
        return self

    @field_validator("split", mode="before")
    @classmethod
    def _no_split(cls, v: Any) -> Any:
        return v or None  # bundles written without split information hold {}

    def document(self) -> dict[str, Any]:
        """bundle.json as written (JSON types, aliases as in the file). Optional sections that are absent are not
        written, so a bundle of an older format reads back (and digests) exactly as it was written."""
        absent: dict[str, Any] = {k: True for k in ("multilabel", "decision", "temperature_bias", "temperature_scale")
                                  if getattr(self, k) is None}
        unset = {k for k in ("views", "members") if getattr(self.model_io, k) is None}
        if unset:
            absent["model_io"] = unset
        ood_unset = {k for k in ("confidence", "components") if getattr(self.ood, k) is None}
        if ood_unset:
            absent["ood"] = ood_unset
        if self.conformal is not None and self.conformal.pooled is None:
            absent["conformal"] = {"pooled"}
        return self.model_dump(mode="json", by_alias=True, exclude=absent or None)

    def digest(self) -> str:
        return integrity_digest(self.document())

    def write(self, folder: Path) -> Path:
        doc = self.model_copy(update={"integrity": self.digest()})
        path = folder / "bundle.json"
        path.write_text(json.dumps(doc.document(), indent=1), encoding="utf-8")
        return path


def bundle_identity(name: str, version: str | None = None) -> dict[str, Any]:
    """How every new image bundle starts: the current format, its name, its version (default: a UTC timestamp) and
    when it was made."""
    now = dt.datetime.now(dt.UTC)
    return {"format_version": FORMAT_VERSION, "name": name, "version": version or now.strftime("%Y.%m.%d-%H%M%S"),
            "created": now.isoformat(timespec="seconds")}


class ManifestHead(BaseModel):
    """What the JSON-only bundle kinds (clinical, signal) share at the top of bundle.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format_version: int
    name: str
    version: str
    created: str
    intended_use: str = ""
    label_spec: LabelSpec
    class_ids: list[str]


class Identified:
    """What every bundle kind says about itself, read from its manifest (``spec``)."""

    spec: Any  # BundleSpec or TabularSpec: both have name, version and label_spec

    @property
    def name(self) -> str:
        return str(self.spec.name)

    @property
    def version(self) -> str:
        return str(self.spec.version)

    @property
    def labels(self) -> LabelSpec:
        return self.spec.label_spec  # type: ignore[no-any-return]

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.name, version=self.version)
