"""Label specs: what each class is, how urgent it is, and how source labels map onto classes.

A spec is YAML (see ``carelens/specs/*.yaml``). Each class has an ``id``, a display ``name``, a
body-system ``group``, a ``severity``, a ``triage`` level and ``advice``. ``merge`` rules map source
labels (folder names, manifest values, MedMNIST label names; shell-style patterns allowed) onto
class ids, so classes can be merged or split into finer ones without moving files. ``drop`` lists
source labels that are left out on purpose.
"""

from __future__ import annotations

import fnmatch
import glob
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from carelens.errors import LabelSpecError

__all__ = [
    "NO_CRITICAL_NOTE",
    "NO_SPEC_NOTE",
    "SEVERITIES",
    "TASKS",
    "TRIAGE_ACTIONS",
    "TRIAGE_LEVELS",
    "Checklist",
    "ClassSpec",
    "DomainSymptom",
    "LabelSpec",
    "MergeRule",
    "SeverityLevel",
    "builtin_specs",
    "label_problems",
    "load_spec",
    "spec_from_labels",
    "template_spec",
    "triage_rank",
]

SEVERITIES = ("low", "moderate", "high", "critical")
# what to do and how soon, per triage level ({who}: the spec's care provider, doctor or veterinarian); the advice of
# a class that has none of its own, and the explanations' closing instruction
TRIAGE_ACTIONS = {
    "self_care": "This can usually be looked after at home. See a {who} if it gets worse or has not improved in a week.",
    "consultation": "Book a visit with a {who} in the next few days.",
    "consultation_24": "See a {who} within 24 hours.",
    "emergency": "Go to an emergency {who} now.",
    "emergency_ambulance": "Call emergency services now.",
}
# Ordered from least to most urgent: the decision policy takes the max over plausible classes.
TRIAGE_LEVELS = ("self_care", "consultation", "consultation_24", "emergency", "emergency_ambulance")

TASKS = ("multiclass", "multilabel")
Severity = Literal["low", "moderate", "high", "critical"]
Triage = Literal["self_care", "consultation", "consultation_24", "emergency", "emergency_ambulance"]


def triage_rank(level: str) -> int:
    """Position of a triage level in urgency order (0 = self care)."""
    try:
        return TRIAGE_LEVELS.index(level)
    except ValueError:
        raise LabelSpecError(
            f"unknown triage level {level!r}; expected one of {', '.join(TRIAGE_LEVELS)}"
        ) from None


class SeverityLevel(BaseModel):
    """One grade of a condition in a multi-label spec (acne ``mild``, retinopathy ``proliferative``), mildest
    first: its own triage level, severity (critical grades count in the critical-miss rate) and advice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str = ""
    severity: Severity = "moderate"
    triage: Triage = "consultation"
    advice: str = ""

    @property
    def is_critical(self) -> bool:
        return self.severity in ("high", "critical")


class ClassSpec(BaseModel):
    """One condition the model can report. In a multi-label spec a condition may have ``severity_levels``
    (mildest first); its own ``triage`` then applies when the grade is not known."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    group: str = "general"
    severity: Severity = "moderate"
    triage: Triage = "consultation"
    advice: str = ""
    description: str = ""
    severity_levels: tuple[SeverityLevel, ...] = Field(default=(), exclude_if=lambda v: not v)  # absent when none

    @property
    def is_critical(self) -> bool:
        """A class that must not be missed: severity high or critical."""
        return self.severity in ("high", "critical")

    @property
    def level_ids(self) -> list[str]:
        return [lv.id for lv in self.severity_levels]

    def level_index(self, level: str) -> int:
        """Position of a severity level (mildest = 0); LabelSpecError naming the known ones."""
        try:
            return self.level_ids.index(level)
        except ValueError:
            raise LabelSpecError(f"condition {self.id!r} has no severity level {level!r}; its levels are "
                                 f"{', '.join(self.level_ids) or '(none)'}") from None


class DomainSymptom(BaseModel):
    """A question the image's domain asks (a skin lesion: does it bleed, has it grown, has it changed?), with the
    words people use for it and its points in the spec's checklist."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    synonyms: tuple[str, ...] = ()
    points: int = Field(default=0, ge=0)


class Checklist(BaseModel):
    """A published scoring rule over the domain symptoms: a score at or above ``threshold`` sets the triage level
    to at least ``triage`` (never lowers it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    threshold: int = Field(ge=1)
    triage: Triage
    reference: str = ""


class MergeRule(BaseModel):
    """Map every source label matching one of ``from`` onto class ``to``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    sources: tuple[str, ...] = Field(alias="from", min_length=1)
    to: str


class LabelSpec(BaseModel):
    """The classes of one model and the rules that map source labels onto them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str = ""
    task: Literal["multiclass", "multilabel"] = "multiclass"
    modality: str = ""
    # who the model is for (human, dog, cat ...); written out only when not the default, so that documents
    # written before species existed read back unchanged
    species: tuple[str, ...] = Field(default=("human",), min_length=1, exclude_if=lambda v: tuple(v) == ("human",))
    care_provider: str = Field(default="", exclude_if=lambda v: not v)  # default: doctor, or veterinarian for animals
    description: str = ""
    reference: dict[str, Any] = Field(default_factory=dict)
    classes: tuple[ClassSpec, ...] = Field(min_length=2)
    merge: tuple[MergeRule, ...] = ()
    drop: tuple[str, ...] = ()
    # what people are asked about the image's subject (read from their words with the symptom parser), and a
    # checklist scoring the answers; written out only when present, so older documents read back unchanged
    symptoms: tuple[DomainSymptom, ...] = Field(default=(), exclude_if=lambda v: not v)
    checklist: Checklist | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _check(self) -> LabelSpec:
        ids = [c.id for c in self.classes]
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        if dupes:
            raise ValueError(f"class ids must be unique; repeated: {', '.join(dupes)}")
        unknown = sorted({r.to for r in self.merge} - set(ids))
        if unknown:
            raise ValueError(
                f"merge rules point to classes that are not defined: {', '.join(unknown)}; "
                f"defined classes: {', '.join(ids)}"
            )
        if self.checklist is not None and not any(q.points for q in self.symptoms):
            raise ValueError("a checklist needs symptoms with points")
        bad_species = [x for x in self.species if not re.fullmatch(r"[a-z_]+", x)]
        if bad_species:
            raise ValueError(f"species must be lower-case names (human, dog, cat ...), got {bad_species}")
        graded = [c.id for c in self.classes if c.severity_levels]
        if graded and self.task != "multilabel":
            raise ValueError(f"severity_levels ({', '.join(graded)}) need `task: multilabel`")
        for c in self.classes:
            levels = c.level_ids
            if len(set(levels)) != len(levels):
                raise ValueError(f"condition {c.id!r} repeats a severity level: {', '.join(levels)}")
            if len(levels) == 1:
                raise ValueError(f"condition {c.id!r} has one severity level; give two or more, or none")
        return self

    # -- lookups -------------------------------------------------------------------------------
    @property
    def class_ids(self) -> list[str]:
        return [c.id for c in self.classes]

    def index(self, class_id: str) -> int:
        try:
            return self.class_ids.index(class_id)
        except ValueError:
            raise LabelSpecError(
                f"class {class_id!r} is not in spec {self.name!r} ({', '.join(self.class_ids)})"
            ) from None

    def get(self, class_id: str) -> ClassSpec:
        return self.classes[self.index(class_id)]

    @property
    def veterinary(self) -> bool:
        return any(x != "human" for x in self.species)

    @property
    def provider(self) -> str:
        """Who the advice sends the person to: the spec's ``care_provider``, else doctor or veterinarian."""
        return self.care_provider or ("veterinarian" if self.veterinary else "doctor")

    def action(self, level: str) -> str:
        """What to do at a triage level, addressed to this spec's care provider."""
        return TRIAGE_ACTIONS[level].format(who=self.provider)

    def serves(self, species: str) -> bool:
        return species in self.species

    def require_species(self, species: str | None, what: str) -> None:
        """LabelSpecError unless ``species`` (when given) is one this model is for: a model of another species is
        never used."""
        if species is not None and not self.serves(species):
            raise LabelSpecError(f"{what} ({self.name}) is for {', '.join(self.species)}, not {species}; use a model "
                                 f"trained for {species}")

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    @property
    def severity_sizes(self) -> list[int]:
        """Number of severity levels per condition (0 where a condition has none)."""
        return [len(c.severity_levels) for c in self.classes]

    def finding_triage(self, k: int, level: int | None) -> tuple[str, bool]:
        """(triage level, critical?) of condition ``k`` at severity ``level`` (``None``: grade not known; the
        condition's own triage, or its most urgent grade's when that is more urgent and the grade is unknown)."""
        c = self.classes[k]
        if level is not None and c.severity_levels:
            lv = c.severity_levels[level]
            return lv.triage, lv.is_critical
        return c.triage, c.is_critical

    @property
    def critical_indices(self) -> list[int]:
        """Indices of the classes that must not be missed (severity high or critical)."""
        return [i for i, c in enumerate(self.classes) if c.is_critical]

    @property
    def routine_indices(self) -> list[int]:
        """Indices of the classes whose own triage is below ``consultation_24`` (self care or a routine visit):
        sending them to urgent care is over-triage."""
        return [i for i, c in enumerate(self.classes) if triage_rank(c.triage) < triage_rank("consultation_24")]

    # -- mapping source labels -----------------------------------------------------------------
    def map_label(self, source: str) -> str | None:
        """The class id for one source label, ``None`` if dropped, ``LabelSpecError`` if unknown."""
        mapped = self._map(source)
        if mapped is _UNKNOWN:
            raise LabelSpecError(self._unknown_message([source]))
        return mapped  # type: ignore[return-value]

    def map_labels(self, sources: Iterable[str]) -> list[str | None]:
        """Map many labels; every unknown one is named in a single error."""
        out: list[str | None] = []
        unknown: set[str] = set()
        cache: dict[str, object] = {}
        for s in sources:
            if s not in cache:
                cache[s] = self._map(s)
            m = cache[s]
            if m is _UNKNOWN:
                unknown.add(s)
            out.append(m)  # type: ignore[arg-type]
        if unknown:
            raise LabelSpecError(self._unknown_message(sorted(unknown)))
        return out

    def check_counts(self, counts: Mapping[str, int]) -> None:
        """Refuse a spec whose classes have no examples in the data (after mapping)."""
        empty = [c for c in self.class_ids if counts.get(c, 0) == 0]
        if empty:
            raise LabelSpecError(
                f"spec {self.name!r} defines classes with no examples in this data: "
                f"{', '.join(empty)}. Add images for them, merge them into another class with a "
                "`merge` rule, or remove them from the spec."
            )

    def _map(self, source: str) -> object:
        for pattern in self.drop:
            if fnmatch.fnmatchcase(source, pattern):
                return None
        for rule in self.merge:
            for pattern in rule.sources:
                if fnmatch.fnmatchcase(source, pattern):
                    return rule.to
        ids = set(self.class_ids)
        if source in ids:
            return source
        leaf = source.rsplit("/", 1)[-1]  # nested folders: 'skin/hot_spot' -> 'hot_spot'
        if leaf in ids:
            return leaf
        return _UNKNOWN

    def _unknown_message(self, labels: list[str]) -> str:
        shown = ", ".join(repr(x) for x in labels[:20])
        more = f" (and {len(labels) - 20} more)" if len(labels) > 20 else ""
        return (
            f"spec {self.name!r} does not know the source labels {shown}{more}. "
            f"Its classes are {', '.join(self.class_ids)}. Add a `merge` rule mapping them onto a "
            "class, list them under `drop`, or fix the folder/manifest labels."
        )

    # -- io ------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, text: str, *, origin: str = "<string>") -> LabelSpec:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LabelSpecError(f"label spec {origin} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise LabelSpecError(f"label spec {origin} must be a YAML mapping with `classes`")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
            raise LabelSpecError(f"label spec {origin} is invalid: {problems}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


_UNKNOWN = object()
_CLASS_ID = re.compile(r"^[a-z0-9_]+$")  # ClassSpec.id's pattern

NO_SPEC_NOTE = ("no label spec: every class has the default severity (moderate) and triage level (consultation), so "
                "none counts as critical, no answer is ever escalated and the critical-miss rate is not measured; "
                "`carelens specs --init DATA` writes a spec to edit (each class's severity, triage and advice), then "
                "train with --spec")
NO_CRITICAL_NOTE = ("label spec {name!r} has no critical class (severity high or critical): no answer is escalated "
                    "beyond its class's own triage level and the critical-miss rate is not measured; if some condition "
                    "must not be missed, set its severity in the spec")


def spec_from_labels(name: str, labels: Iterable[str]) -> LabelSpec:
    """The spec of data that has none: a class per label, its id and name the label itself, every class at the
    defaults (see ``NO_SPEC_NOTE``). LabelSpecError, naming the fix, when a label cannot be a class id."""
    labels = list(labels)
    if bad := _non_ids(labels):
        raise LabelSpecError(
            f"{_not_ids(bad)}, and the data has no label spec to map them onto ids: `carelens specs --init DATA --out "
            "spec.yaml` writes one that does (edit each class's severity and triage), then train with --spec "
            "spec.yaml; or rename the folders or labels")
    return LabelSpec(name=name or "unnamed", classes=tuple(ClassSpec(id=x, name=x) for x in labels))


def label_problems(labels: Iterable[str]) -> list[str]:
    """What the labels of data without a spec need a spec for: spellings of one label that differ only in case or
    spacing (two classes where one was meant), and labels that cannot be class ids (training refuses them)."""
    labels = list(labels)
    problems = [f"labels {', '.join(repr(x) for x in same)} differ only in case or spacing: probably one class under "
                "several spellings; `carelens specs --init DATA` writes a spec that merges them"
                for same in _spellings(labels).values() if len(same) > 1]
    if bad := _non_ids(labels):
        problems.append(f"{_not_ids(bad)}: without a label spec, training refuses them; `carelens specs --init DATA` "
                        "writes one that maps them onto ids")
    return problems


def _non_ids(labels: list[str]) -> list[str]:
    return [x for x in labels if not _CLASS_ID.fullmatch(x)]


def _not_ids(labels: list[str]) -> str:
    named = ", ".join(repr(x) for x in labels)
    return (f"the labels {named} cannot be class ids" if len(labels) > 1 else f"the label {named} cannot be a class id"
            ) + " (lower-case letters, digits and _ only)"


def _spellings(labels: Iterable[str]) -> dict[str, list[str]]:
    """The labels by their folded form (case and runs of spaces ignored), in first-seen order."""
    out: dict[str, list[str]] = {}
    for x in labels:
        out.setdefault(" ".join(x.split()).casefold(), []).append(x)
    return out


def _id_of(text: str) -> str:
    """``text`` as an id: accents dropped (é -> e), lower case, every run of other characters one ``_``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def template_spec(name: str, labels: Iterable[str]) -> LabelSpec:
    """A spec to edit for data that has none: a class per label (spellings that differ only in case or spacing
    are one), named as the label, with an id made from it (lower case, runs of other characters as ``_``; a merge
    rule maps the labels onto it where they differ); every class at the default severity and triage, which the
    person who knows the conditions must set."""
    classes: list[ClassSpec] = []
    merge: list[MergeRule] = []
    for same in _spellings(labels).values():  # 'Benign' and 'benign ': one class, as the audit suggests
        base = _id_of(same[0]) or "class"
        cid, k = base, 2
        while cid in {c.id for c in classes}:  # 'a[1]' and 'A 1' would meet at one id
            cid, k = f"{base}_{k}", k + 1
        classes.append(ClassSpec(id=cid, name=same[0]))
        sources = tuple(glob.escape(x) for x in same if x != cid)  # each label as a pattern, matched literally
        if sources:
            merge.append(MergeRule(sources=sources, to=cid))
    return LabelSpec(name=_id_of(name) or "my_spec", title=name,
                     classes=tuple(classes), merge=tuple(merge))


def builtin_specs() -> list[str]:
    """Names of the specs that ship with carelens."""
    folder = resources.files("carelens") / "specs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(spec: str | Path | LabelSpec) -> LabelSpec:
    """Load a spec from a YAML path or a built-in name (``ham10000``, ``busi``, ...)."""
    if isinstance(spec, LabelSpec):
        return spec
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise LabelSpecError(f"label spec file {path} does not exist")
        return LabelSpec.from_yaml(path.read_text(encoding="utf-8"), origin=str(path))
    name = str(spec)
    if name in builtin_specs():
        text = (resources.files("carelens") / "specs" / f"{name}.yaml").read_text(encoding="utf-8")
        return LabelSpec.from_yaml(text, origin=f"built-in spec {name!r}")
    raise LabelSpecError(
        f"no label spec named {name!r}: not a file, and not one of the built-in specs "
        f"({', '.join(builtin_specs())})"
    )
