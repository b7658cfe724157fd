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

__all__ = ["Context", "Frame", "Symptom", "Vocabulary", "clean_symptom_name", "contexts_of", "frames_of",
           "load_kaggle_vocabulary", "milder_of", "symptom_group", "synonym_template", "synonyms_of"]

# A frame: a site and a descriptor said near each other in one clause, in either order ("my tummy is swollen",
# "swelling in my legs"): (the site's words, the descriptor's words).
Frame = tuple[tuple[str, ...], tuple[str, ...]]
# A context: words that name this symptom only beside another ("no blood" beside diarrhoea is no blood in the stool):
# (the words, the ids of the symptoms that give them this meaning).
Context = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Symptom:
    id: str
    name: str
    group: str
    weight: int  # 1 (mild) to 7 (severe), from Symptom_severity.csv; 3 where the source has none
    synonyms: tuple[str, ...] = ()
    milder: str | None = None  # the id a phrase of this symptom means after "slight", "mild", "a bit of"...
    frames: tuple[Frame, ...] = ()
    contexts: tuple[Context, ...] = ()


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


def _document(path: Path) -> dict[str, Any]:
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise DataError(f"synonym file {path} cannot be read: {exc}") from None
    return _read(path, stamp)


@functools.cache
def _read(path: Path, stamp: int) -> dict[str, Any]:
    """The file's document, read once per modification (``stamp``): an edited synonym file is read again."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"synonym file {path} cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"synonym file {path} must map symptom ids to their synonyms")
    classes = doc.get(CLASSES_KEY) or {}
    if not isinstance(classes, dict) or not all(isinstance(v, list) for v in classes.values()):
        raise DataError(f"synonym file {path}: `{CLASSES_KEY}` must map each class name to a list of words")
    return doc


CLASSES_KEY = "classes"  # the synonym file's one key that is not a symptom id: word classes, NAME -> [words]


def _synonyms(path: Path = SYNONYMS_FILE) -> dict[str, dict[str, Any]]:
    """The synonym file: symptom id -> {"synonyms": [...], "milder": id, "frames": ["SITE DESCRIPTOR", ...],
    "contexts": [{"said": [...], "with": [ids]}]}."""
    return {str(k): dict(v or {}) for k, v in _document(path).items() if k != CLASSES_KEY}


def _classes(extra: Path | None) -> dict[str, list[str]]:
    """Word classes by name (``PAIN``, ``BELLY`` ...): the curated file's, a user's file ``extra`` adding or replacing."""
    found = {str(k): [str(w).lower() for w in v] for k, v in (_document(SYNONYMS_FILE).get(CLASSES_KEY) or {}).items()}
    if extra is not None:
        found |= {str(k): [str(w).lower() for w in v] for k, v in (_document(extra).get(CLASSES_KEY) or {}).items()}
    return found


def _words(term: str, classes: dict[str, list[str]], where: str) -> tuple[str, ...]:
    """A frame's term: a class name (upper case) or literal words joined by ``|`` (``_`` for a space)."""
    if term.isupper():
        if term not in classes:
            raise DataError(f"{where}: unknown word class {term!r}; define it under `{CLASSES_KEY}:`")
        return tuple(classes[term])
    return tuple(w.replace("_", " ") for w in term.lower().split("|"))


def _expand(phrase: str, classes: dict[str, list[str]]) -> list[str]:
    """'off {POSS} food' -> ['off my food', 'off his food', ...]: a class in braces stands for each of its words."""
    m = re.search(r"\{([A-Z_]+)\}", phrase)
    if m is None:
        return [phrase]
    if m.group(1) not in classes:
        raise DataError(f"synonym {phrase!r}: unknown word class {m.group(1)!r}; define it under `{CLASSES_KEY}:`")
    return [x for w in classes[m.group(1)] for x in _expand(phrase[: m.start()] + w + phrase[m.end():], classes)]


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
                 **({"milder": s.milder} if s.milder else {}),
                 **({"frames": [[list(a), list(b)] for a, b in s.frames]} if s.frames else {}),
                 **({"contexts": [[list(a), list(b)] for a, b in s.contexts]} if s.contexts else {})}
                for s in self.symptoms]

    @classmethod
    def from_dict(cls, rows: list[dict[str, object]]) -> Vocabulary:
        return cls([Symptom(str(r["id"]), str(r["name"]), str(r["group"]), int(r["weight"]),  # type: ignore[call-overload]
                            tuple(r.get("synonyms", ())), r.get("milder"),  # type: ignore[arg-type]
                            tuple((tuple(a), tuple(b)) for a, b in r.get("frames", ())),  # type: ignore[attr-defined]
                            tuple((tuple(a), tuple(b)) for a, b in r.get("contexts", ())))  # type: ignore[attr-defined]
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
    classes = _classes(extra)
    said = [*own, *(_synonyms().get(sid, {}).get("synonyms") or ())]
    return tuple(dict.fromkeys(x for p in said for x in _expand(str(p), classes)))


def _entries(sid: str, key: str, extra: Path | None) -> list[tuple[Path, Any]]:
    """(file, entry) for each ``key`` entry of a symptom id: a user's synonym file ``extra`` first, then the curated."""
    return [(path, spec) for path in ([extra] if extra is not None else []) + [SYNONYMS_FILE]
            for spec in _synonyms(path).get(sid, {}).get(key) or ()]


def frames_of(sid: str, extra: Path | None = None) -> tuple[Frame, ...]:
    """The frames curated for a symptom id, and those of a user's synonym file ``extra`` first: each written
    ``"SITE DESCRIPTOR"`` with word classes in upper case (``"BELLY SWOLLEN"``) or words joined by ``|``
    (``"heart FLUTTER"``), resolved to word lists here."""
    classes = _classes(extra)
    out: list[Frame] = []
    for path, spec in _entries(sid, "frames", extra):
        terms = str(spec).split()
        if len(terms) != 2:
            raise DataError(f"{path}: frame {spec!r} of {sid} must be two terms, a site and a descriptor")
        frame = (_words(terms[0], classes, str(path)), _words(terms[1], classes, str(path)))
        if frame not in out:
            out.append(frame)
    return tuple(out)


def contexts_of(sid: str, extra: Path | None = None) -> tuple[Context, ...]:
    """The contexts curated for a symptom id, a user's synonym file ``extra`` first: each ``{said: [words], with:
    [ids]}``, the words meaning this symptom when the complaint also names one of those symptoms."""
    out: list[Context] = []
    for path, spec in _entries(sid, "contexts", extra):
        if not isinstance(spec, dict) or not spec.get("said") or not spec.get("with"):
            raise DataError(f"{path}: a context of {sid} needs `said` (words) and `with` (symptom ids)")
        found = (tuple(str(w).lower() for w in spec["said"]), tuple(str(i) for i in spec["with"]))
        if found not in out:
            out.append(found)
    return tuple(out)


def milder_of(sid: str, extra: Path | None = None) -> str | None:
    """The id a phrase of ``sid`` means after a mildness word (``high_fever`` -> ``mild_fever``), if any; a user's
    synonym file ``extra`` first."""
    own = _synonyms(extra).get(sid, {}).get("milder") if extra is not None else None
    found = own or _synonyms().get(sid, {}).get("milder")
    return str(found) if found else None


def synonym_template(ids: list[str]) -> str:
    """A synonym file to fill for a vocabulary: every id, with the curated phrasings it already has."""
    doc: dict[str, Any] = {sid: {"synonyms": list(synonyms_of(sid)),
                                 **({"frames": list(f)} if (f := _synonyms().get(sid, {}).get("frames")) else {}),
                                 **({"contexts": list(c)} if (c := _synonyms().get(sid, {}).get("contexts")) else {})}
                           for sid in ids}
    if any("frames" in v for v in doc.values()):
        doc[CLASSES_KEY] = _document(SYNONYMS_FILE).get(CLASSES_KEY) or {}
    return ("# Everyday phrasings of your symptoms, by id: add what owners or patients actually write. `milder`: the\n"
            "# id a phrase means after 'slight', 'mild', 'a bit of' (e.g. high_fever: {milder: mild_fever}).\n"
            "# `frames`: a site and a descriptor said near each other in one clause, either order ('BELLY SWOLLEN'\n"
            "# finds 'my tummy is swollen' and 'swelling of the belly'); upper case names a word class of `classes`,\n"
            "# lower case is words joined by |. A class in braces in a synonym stands for each of its words.\n"
            "# `contexts`: words that mean this symptom beside another ({said: [blood], with: [diarrhoea]}).\n"
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
                weights.get(sid, 3), synonyms_of(sid), milder_of(sid), frames_of(sid), contexts_of(sid))
        for sid in ids
    ]
    return Vocabulary(symptoms)
