"""The symptom vocabulary: canonical id, display name, synonyms, body-system group, severity weight.

Built from the Kaggle symptom tables with their known defects cleaned (SOURCES.md): the duplicated
``fluid_overload`` column (the first copy is all zeros), names with stray spaces
(``spotting_ urination``), the renamed ``toxic_look_typhos`` column of the 42-row variant, and
severity rows whose names are spelled differently. Groups and synonyms are curated here.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from carelens.errors import DataError

__all__ = ["Symptom", "Vocabulary", "clean_symptom_name", "load_kaggle_vocabulary", "milder_of", "symptom_group",
           "synonym_template", "synonyms_of"]


@dataclass(frozen=True)
class Symptom:
    id: str
    name: str
    group: str
    weight: int  # 1 (mild) to 7 (severe), from Symptom_severity.csv; 3 where the source has none
    synonyms: tuple[str, ...] = ()
    milder: str | None = None  # the id a phrase of this symptom means after "slight", "mild", "a bit of"...


def clean_symptom_name(raw: str) -> str:
    """'spotting_ urination' -> 'spotting_urination'; 'toxic_look_typhos' -> 'toxic_look_(typhos)'."""
    s = re.sub(r"_?\s+_?", "_", raw.strip().lower())
    s = re.sub(r"\.\d+$", "", s)  # pandas-style duplicate suffix
    return {"toxic_look_typhos": "toxic_look_(typhos)"}.get(s, s)


# Body systems by keyword, first match wins; anything else is "general".
_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("history", ("history", "extra_marital", "receiving_", "family_")),
    ("eye", ("eyes", "vision", "visual")),
    ("skin", ("skin", "itching", "rash", "eruptions", "blister", "pimples", "blackheads", "scurring", "dusting",
              "nails", "sore_around_nose", "crust", "dischromic", "red_spots", "bruising", "lips")),
    ("respiratory", ("cough", "breath", "sneezing", "phlegm", "throat", "sinus", "runny_nose", "congestion",
                     "sputum", "smell")),
    ("cardiovascular", ("chest_pain", "heart_rate", "palpitations", "blood_vessels", "veins", "swollen_legs")),
    ("urinary", ("urine", "urination", "micturition", "bladder", "polyuria")),
    ("digestive", ("stomach", "vomiting", "nausea", "diarrhoea", "constipation", "abdominal", "abdomen", "appetite",
                   "indigestion", "acidity", "belly", "stool", "bowel", "anal", "anus", "liver", "gases", "tongue",
                   "yellowish", "hunger")),
    ("neurological", ("headache", "dizziness", "spinning", "balance", "unsteadiness", "speech", "sensorium", "coma",
                      "one_body_side", "concentration")),
    ("musculoskeletal", ("joint", "muscle", "knee", "hip", "neck", "back_pain", "stiffness", "walking", "cramps",
                         "limbs", "extremeties")),
    ("mental", ("anxiety", "depression", "irritability", "mood", "restlessness")),
    ("endocrine", ("sugar", "thyroid", "weight", "obesity")),
]

SYNONYMS_FILE = Path(__file__).with_name("synonyms") / "kaggle41.yaml"  # curated everyday phrasings, reviewable


@functools.cache
def _synonyms(path: Path = SYNONYMS_FILE) -> dict[str, dict[str, Any]]:
    """The synonym file: symptom id -> {"synonyms": [...], "milder": id (optional)}."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"synonym file {path} cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"synonym file {path} must map symptom ids to their synonyms")
    return {str(k): dict(v or {}) for k, v in doc.items()}


@dataclass
class Vocabulary:
    symptoms: list[Symptom]
    _by_id: dict[str, Symptom] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {s.id: s for s in self.symptoms}

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.symptoms]

    def __contains__(self, sid: object) -> bool:
        return sid in self._by_id

    def get(self, sid: str) -> Symptom:
        return self._by_id[sid]

    def phrases(self) -> list[tuple[str, str]]:
        """(phrase, id) for every display name and synonym."""
        out = []
        for s in self.symptoms:
            out.append((s.name, s.id))
            out += [(syn, s.id) for syn in s.synonyms]
        return out

    def to_dict(self) -> list[dict[str, object]]:
        return [{"id": s.id, "name": s.name, "group": s.group, "weight": s.weight, "synonyms": list(s.synonyms),
                 **({"milder": s.milder} if s.milder else {})} for s in self.symptoms]

    @classmethod
    def from_dict(cls, rows: list[dict[str, object]]) -> Vocabulary:
        return cls([Symptom(str(r["id"]), str(r["name"]), str(r["group"]), int(r["weight"]),  # type: ignore[call-overload]
                            tuple(r.get("synonyms", ())), r.get("milder"))  # type: ignore[arg-type]
                    for r in rows])


def symptom_group(sid: str) -> str:
    """The body system of a symptom id, by keyword (``general`` when none matches)."""
    for group, keys in _GROUPS:
        if any(k in sid for k in keys):
            return group
    return "general"


def synonyms_of(sid: str, extra: Path | None = None) -> tuple[str, ...]:
    """The everyday phrasings curated for a symptom id (none for an unknown one), and those of a user's synonym
    file ``extra`` (same format as ``synonyms/kaggle41.yaml``) first."""
    own = list(_synonyms(extra).get(sid, {}).get("synonyms") or ()) if extra is not None else []
    return tuple(dict.fromkeys([*own, *(_synonyms().get(sid, {}).get("synonyms") or ())]))


def milder_of(sid: str, extra: Path | None = None) -> str | None:
    """The id a phrase of ``sid`` means after a mildness word (``high_fever`` -> ``mild_fever``), if any; a user's
    synonym file ``extra`` first."""
    own = _synonyms(extra).get(sid, {}).get("milder") if extra is not None else None
    found = own or _synonyms().get(sid, {}).get("milder")
    return str(found) if found else None


def synonym_template(ids: list[str]) -> str:
    """A synonym file to fill for a vocabulary: every id, with the curated phrasings it already has."""
    doc = {sid: {"synonyms": list(synonyms_of(sid))} for sid in ids}
    return ("# Everyday phrasings of your symptoms, by id: add what owners or patients actually write. `milder`: the\n"
            "# id a phrase means after 'slight', 'mild', 'a bit of' (e.g. high_fever: {milder: mild_fever}).\n"
            + str(yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, width=110)))


def load_kaggle_vocabulary(root: Path) -> Vocabulary:
    """The 131 distinct symptoms of ``symptom_disease_kaggle41`` with groups, weights and synonyms."""
    train = root / "disease_prediction" / "Training.csv"
    sev = root / "disease_symptom_description" / "Symptom_severity.csv"
    if not train.is_file():
        raise DataError(f"{train} not found; set CARELENS_DATA to the folder holding symptom_disease_kaggle41")
    with train.open(newline="") as f:
        header = next(csv.reader(f))
    ids: list[str] = []
    for raw in header:
        sid = clean_symptom_name(raw)
        if raw.strip() and sid != "prognosis" and sid not in ids:
            ids.append(sid)
    weights: dict[str, int] = {}
    if sev.is_file():
        with sev.open(newline="") as f:
            for row in csv.reader(f):  # no header: symptom, weight; fluid_overload appears twice
                if len(row) >= 2 and row[1].strip().isdigit():
                    weights.setdefault(clean_symptom_name(row[0]), int(row[1]))
    symptoms = [
        Symptom(sid, sid.replace("_", " ").replace("(", "").replace(")", "").strip(), symptom_group(sid),
                weights.get(sid, 3), synonyms_of(sid), milder_of(sid))
        for sid in ids
    ]
    return Vocabulary(symptoms)
