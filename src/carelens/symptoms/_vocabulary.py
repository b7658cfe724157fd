"""The symptom vocabulary: canonical id, display name, synonyms, body-system group, severity weight.

Built from the Kaggle symptom tables with their known defects cleaned (SOURCES.md): the duplicated
``fluid_overload`` column (the first copy is all zeros), names with stray spaces
(``spotting_ urination``), the renamed ``toxic_look_typhos`` column of the 42-row variant, and
severity rows whose names are spelled differently. Groups and synonyms are curated here.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from carelens.errors import DataError

__all__ = ["Symptom", "Vocabulary", "clean_symptom_name", "load_kaggle_vocabulary", "symptom_group", "synonyms_of"]


@dataclass(frozen=True)
class Symptom:
    id: str
    name: str
    group: str
    weight: int  # 1 (mild) to 7 (severe), from Symptom_severity.csv; 3 where the source has none
    synonyms: tuple[str, ...] = ()


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

# Everyday phrasings people (and pet owners) use, mapped to canonical ids.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "itching": ("itchy", "itch", "scratching", "keeps scratching", "scratches"),
    "skin_rash": ("rash", "spots on the skin", "red skin"),
    "continuous_sneezing": ("sneezing", "keeps sneezing", "sneezes"),
    "shivering": ("shaking with cold", "trembling"),
    "chills": ("feeling cold", "cold shivers"),
    "joint_pain": ("sore joints", "joints hurt", "aching joints"),
    "stomach_pain": ("stomach ache", "tummy ache", "stomach hurts", "tummy pain"),
    "acidity": ("heartburn", "acid reflux"),
    "vomiting": ("throwing up", "being sick", "vomits", "vomited", "vomit", "puking"),
    "burning_micturition": ("burning when peeing", "painful urination", "burns when i pee"),
    "fatigue": ("tired", "tiredness", "exhausted", "no energy", "weak and tired"),
    "weight_loss": ("losing weight", "lost weight"),
    "weight_gain": ("gaining weight", "put on weight"),
    "lethargy": ("lethargic", "sluggish", "listless"),
    "cough": ("coughing", "coughs", "a cough"),
    "high_fever": ("fever", "high temperature", "temperature", "feverish", "burning up"),
    "mild_fever": ("slight fever", "low fever", "low grade fever"),
    "breathlessness": ("short of breath", "shortness of breath", "breathing hard", "can't breathe", "hard to breathe",
                       "laboured breathing", "panting"),
    "sweating": ("sweaty", "sweats", "night sweats"),
    "dehydration": ("dehydrated", "very thirsty"),
    "indigestion": ("upset stomach", "dyspepsia"),
    "headache": ("head hurts", "head ache", "head pain"),
    "yellowish_skin": ("yellow skin", "jaundiced skin"),
    "dark_urine": ("dark pee", "brown urine"),
    "nausea": ("nauseous", "feel sick", "queasy"),
    "loss_of_appetite": ("not eating", "won't eat", "no appetite", "off his food", "off her food", "not hungry",
                         "refuses food"),
    "back_pain": ("backache", "back hurts", "sore back"),
    "constipation": ("constipated", "can't poop", "no bowel movement"),
    "abdominal_pain": ("belly ache", "pain in the abdomen", "abdominal cramps"),
    "diarrhoea": ("diarrhea", "loose stools", "runny poo", "watery stool"),
    "yellowing_of_eyes": ("yellow eyes",),
    "swelled_lymph_nodes": ("swollen glands", "swollen lymph nodes"),
    "blurred_and_distorted_vision": ("blurry vision", "blurred vision"),
    "phlegm": ("mucus", "coughing up mucus"),
    "throat_irritation": ("sore throat", "scratchy throat"),
    "redness_of_eyes": ("red eyes", "bloodshot eyes", "pink eye"),
    "runny_nose": ("runny nose", "nasal discharge", "snotty nose"),
    "congestion": ("blocked nose", "stuffy nose", "congested"),
    "chest_pain": ("pain in the chest", "chest hurts", "chest tightness", "tight chest", "chest feels tight"),
    "fast_heart_rate": ("racing heart", "heart racing", "rapid heartbeat"),
    "bloody_stool": ("blood in stool", "blood in the poo", "bloody poo"),
    "dizziness": ("dizzy", "lightheaded", "light headed"),
    "cramps": ("muscle cramps",),
    "neck_pain": ("sore neck",),
    "stiff_neck": ("neck stiffness",),
    "loss_of_balance": ("falling over", "can't balance"),
    "slurred_speech": ("slurring words", "speech is slurred"),
    "weakness_of_one_body_side": ("one side weak", "weakness on one side", "face drooping"),
    "watering_from_eyes": ("watery eyes", "teary eyes", "eye discharge"),
    "muscle_pain": ("aching muscles", "sore muscles", "body aches"),
    "red_spots_over_body": ("red spots", "spots all over"),
    "pus_filled_pimples": ("pimples", "pus spots"),
    "skin_peeling": ("peeling skin", "flaky skin"),
    "blister": ("blisters",),
    "palpitations": ("heart pounding", "fluttering heart"),
    "anxiety": ("anxious", "worried", "nervous"),
    "depression": ("depressed", "low mood"),
    "irritability": ("irritable", "grumpy", "snappy"),
    "restlessness": ("restless", "can't settle", "agitated"),
    "swelling_joints": ("swollen joints",),
    "painful_walking": ("limping", "hurts to walk", "pain when walking"),
    "excessive_hunger": ("always hungry", "very hungry"),
    "polyuria": ("peeing a lot", "urinating often", "frequent urination"),
    "loss_of_smell": ("can't smell", "no sense of smell"),
    "coma": ("unconscious", "unresponsive"),
    "altered_sensorium": ("confused", "confusion", "disoriented"),
}


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
        return [{"id": s.id, "name": s.name, "group": s.group, "weight": s.weight, "synonyms": list(s.synonyms)}
                for s in self.symptoms]

    @classmethod
    def from_dict(cls, rows: list[dict[str, object]]) -> Vocabulary:
        return cls([Symptom(str(r["id"]), str(r["name"]), str(r["group"]), int(r["weight"]),  # type: ignore[call-overload]
                            tuple(r.get("synonyms", ())))  # type: ignore[arg-type]
                    for r in rows])


def symptom_group(sid: str) -> str:
    """The body system of a symptom id, by keyword (``general`` when none matches)."""
    for group, keys in _GROUPS:
        if any(k in sid for k in keys):
            return group
    return "general"


def synonyms_of(sid: str) -> tuple[str, ...]:
    """The everyday phrasings curated for a symptom id (none for an unknown one)."""
    return _SYNONYMS.get(sid, ())


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
                weights.get(sid, 3), synonyms_of(sid))
        for sid in ids
    ]
    return Vocabulary(symptoms)
