"""A labelled set of complaints written the way patients and pet owners write them (issue 18), for the symptom
parser: each with the canonical symptoms present and negated (Kaggle-41 vocabulary ids).

Built from complaint templates (sentence patterns: conjunctions, negation with scope and termination, pseudo-
negations such as "can't stop", severity words, several symptoms per clause, pet owners, sentences with no symptom)
filled with lay phrasings. The split is by template AND by phrasing: tuning templates draw their phrasings from pool
``A``, test templates from pool ``B`` (the same symptoms said differently), so neither a sentence pattern nor a
lay phrasing of the test half is seen while synonyms and rules are tuned. ``complaints()`` gives 330 complaints.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

__all__ = ["Complaint", "complaints", "score"]


@dataclass(frozen=True)
class Complaint:
    template: int
    half: str  # "tune" | "test"
    text: str
    present: frozenset[str]
    negated: frozenset[str]


# symptom id -> (pool A phrasing, pool B phrasing): noun phrases that read after "I have" / "no"
NOUNS: dict[str, tuple[str, str]] = {
    "itching": ("itchy skin", "an itch that won't go away"),
    "skin_rash": ("a rash", "red blotches on my skin"),
    "continuous_sneezing": ("constant sneezing", "sneezing fits"),
    "chills": ("the chills", "cold shivers"),
    "joint_pain": ("achy joints", "aching in my joints"),
    "stomach_pain": ("tummy ache", "a pain in my stomach"),
    "vomiting": ("throwing up", "sick bowls all night"),
    "fatigue": ("tiredness", "no energy at all"),
    "cough": ("a bad cough", "a hacking cough"),
    "high_fever": ("a high temperature", "a raging fever"),
    "mild_fever": ("a slight temperature", "a bit of a temperature"),
    "headache": ("a pounding head", "a splitting headache"),
    "nausea": ("nausea", "a queasy feeling"),
    "diarrhoea": ("the runs", "runny poos"),
    "dizziness": ("dizzy spells", "a woozy feeling"),
    "chest_pain": ("chest pains", "a tight pain across my chest"),
    "back_pain": ("a bad back", "lower back ache"),
    "runny_nose": ("a runny nose", "a drippy nose"),
    "throat_irritation": ("a sore throat", "a scratchy throat"),
    "redness_of_eyes": ("red eyes", "bloodshot eyes"),
    "watering_from_eyes": ("watery eyes", "weepy eyes"),
    "muscle_pain": ("aching muscles", "sore muscles all over"),
    "distention_of_abdomen": ("a bloated tummy", "a swollen belly"),
    "swollen_legs": ("swollen legs", "puffy ankles"),
    "foul_smell_of_urine": ("smelly pee", "wee that smells really bad"),
    "dark_urine": ("dark pee", "brown wee"),
    "weight_loss": ("weight loss", "a lot of weight dropping off"),
    "sweating": ("heavy sweating", "night sweats"),
    "palpitations": ("a pounding heart", "a fluttery heartbeat"),
    "constipation": ("constipation", "trouble going for a poo"),
    "anxiety": ("anxiety", "a lot of worry and nerves"),
    "congestion": ("a blocked nose", "a stuffed up nose"),
    "skin_peeling": ("peeling skin", "skin flaking off"),
    "lethargy": ("lethargy", "no get up and go"),
    "loss_of_appetite": ("a poor appetite", "a loss of appetite"),
    "breathlessness": ("shortness of breath", "trouble catching my breath"),
    "blister": ("blisters", "little fluid bubbles on the skin"),
}

# symptom id -> (pool A, pool B): whole clauses
CLAUSES: dict[str, tuple[str, str]] = {
    # pool B's phrasing is not the issue's own example ("it stings when I wee"), which has a synonym written for it
    "burning_micturition": ("it burns when I pee", "it hurts to pass water"),
    "vomiting": ("I keep throwing up", "I can't keep anything down"),
    "itching": ("my skin is itching like mad", "I'm scratching all the time"),
    "breathlessness": ("I get out of breath on the stairs", "I'm puffed out after a few steps"),
    "headache": ("my head is killing me", "my head is throbbing"),
    "loss_of_appetite": ("I'm off my food", "I don't feel like eating"),
    "dizziness": ("I feel dizzy", "everything goes woozy when I stand"),
    "fatigue": ("I'm worn out", "I'm shattered all the time"),
    "distention_of_abdomen": ("my tummy is swollen and tight", "my belly is bloated and hard"),
    "foul_smell_of_urine": ("my wee smells really bad", "my pee stinks"),
    "runny_nose": ("my nose keeps running", "my nose won't stop dripping"),
    "cough": ("I'm coughing a lot", "I've been coughing all week"),
    "diarrhoea": ("I've got the runs", "my poo is watery"),
    "swollen_legs": ("my ankles are puffy", "my legs have swelled up"),
    "redness_of_eyes": ("my eyes are red", "my eyes look bloodshot"),
    "chest_pain": ("my chest hurts", "there's a pain in my chest"),
    "stomach_pain": ("my tummy hurts", "my stomach is aching"),
    "watering_from_eyes": ("my eyes are watering", "my eyes won't stop streaming"),
}

# pet owners: (pool A, pool B) clauses about the animal
PET: dict[str, tuple[str, str]] = {
    "itching": ("he keeps scratching", "she's been chewing and scratching at her skin"),
    "vomiting": ("he's been sick three times", "she keeps bringing her food back up"),
    "diarrhoea": ("she has diarrhoea", "he's got an upset tummy with loose poo"),
    "loss_of_appetite": ("he's off his food", "she won't touch her dinner"),
    "lethargy": ("she's very lethargic", "he just mopes around and sleeps"),
    "cough": ("he has a honking cough", "she keeps coughing at night"),
    "weight_loss": ("she's lost weight", "you can see his ribs now"),
    "skin_rash": ("he has a red rash on his belly", "there are red bumps on her tummy"),
}

# "can't stop ..." and other phrasings whose negative words do not negate (all present)
PSEUDO: dict[str, tuple[str, str]] = {
    "continuous_sneezing": ("I can't stop sneezing", "I haven't stopped sneezing since Monday"),
    "cough": ("I can't stop coughing", "the coughing never stops"),
    "itching": ("I can't stop scratching", "the itching won't stop"),
    "breathlessness": ("I can't catch my breath", "I can't breathe properly"),
    "loss_of_smell": ("I can't smell anything", "I can't smell my coffee any more"),
    "loss_of_appetite": ("I'm not eating much", "I'm not hungry at all"),
    "altered_sensorium": ("she's not making sense", "he's not himself and seems confused"),
}

NO_SYMPTOM = {
    "A": ["I'd just like a general check-up", "we moved house last week", "my dog is seven years old",
          "I have an appointment on Monday", "nothing else to report"],
    "B": ["can you tell me your opening hours", "my cat had her vaccinations in May", "I'm asking for my mum",
          "we're going on holiday next week", "no other problems"],
}

# (pattern, [slot kinds]); slot kinds: p/n (noun phrase, present/negated), c (clause, present), q (pseudo, present),
# e (pet clause, present). The template number decides the half: odd -> tune, even -> test.
TEMPLATES: list[tuple[str, list[str]]] = [
    ("I have {0}", ["p"]),
    ("I've got {0} and {1}", ["p", "p"]),
    ("{0}, {1} and {2}", ["p", "p", "p"]),
    ("no {0}", ["n"]),
    ("{0} but no {1}", ["p", "n"]),
    ("no {0} but {1}", ["n", "p"]),
    ("{0}, not {1}", ["p", "n"]),
    ("I have {0} without {1}", ["p", "n"]),
    ("denies {0}", ["n"]),
    ("I haven't had {0}", ["n"]),
    ("she doesn't have {0} or {1}", ["n", "n"]),
    ("no {0}, no {1}, just {2}", ["n", "n", "p"]),
    ("{0} since yesterday", ["p"]),
    ("had {0} for three days now", ["p"]),
    ("really bad {0} and {1}", ["p", "p"]),
    ("{0}, although there's no {1}", ["p", "n"]),
    ("{0} and {1}", ["c", "c"]),
    ("{0}, and I also have {1}", ["c", "p"]),
    ("{0} but there's been no sign of {1}", ["c", "n"]),
    ("{0}", ["c"]),
    ("{0}. {1}.", ["e", "e"]),
    ("{0} and {1}, but no {2}", ["e", "e", "n"]),
    ("my dog is fine except {0}", ["e"]),
    ("{0}", ["q"]),
    ("{0} and {1}", ["q", "p"]),
    ("{0}, no {1} though", ["q", "n"]),
    ("{0}, {1}", ["c", "q"]),
    ("{0} but I don't have {1}", ["c", "n"]),
    ("not {0}, but {1}", ["n", "p"]),
    ("{0} with {1} and {2}", ["p", "p", "p"]),
    ("{0}", ["x"]),
    ("{0}; {1}", ["x", "p"]),
    ("{0} and I don't have {1} or {2}", ["c", "n", "n"]),
    ("I had {0} last week but that's gone now, today it's {1}", ["n", "p"]),
    ("{0}, that's all", ["x"]),
    ("{0}, thanks", ["x"]),
]


def _pool(kind: str, half: str) -> list[tuple[str, str]]:
    k = 0 if half == "A" else 1
    table = {"p": NOUNS, "n": NOUNS, "c": CLAUSES, "q": PSEUDO, "e": PET}.get(kind)
    if table is None:
        return [(s, "") for s in NO_SYMPTOM[half]]
    return [(v[k], sid) for sid, v in table.items()]


def complaints(per_template: int = 10) -> list[Complaint]:
    out: list[Complaint] = []
    for t, (pattern, slots) in enumerate(TEMPLATES, start=1):
        half = "A" if t % 2 else "B"
        pools = [_pool(kind, half) for kind in slots]
        # walk the pools in step, each from its own offset, skipping fillings that repeat a symptom
        made = 0
        for k in itertools.count():
            if made == per_template or k > 200:
                break
            pick = [pools[j][(k * (j + 3) + t * 7 + j * 5) % len(pools[j])] for j in range(len(slots))]
            ids = [sid for _, sid in pick if sid]
            if len(set(ids)) != len(ids):
                continue
            words = [re.sub(r"^(?:a|an|the) ", "", p) if kind == "n" else p for (p, _), kind in zip(pick, slots,
                                                                                                       strict=True)]
            text = pattern.format(*words)  # negated slots without their article: "no rash", "denies bad cough"
            text = text[0].upper() + text[1:]
            present = frozenset(sid for (_, sid), kind in zip(pick, slots, strict=True) if sid and kind != "n")
            negated = frozenset(sid for (_, sid), kind in zip(pick, slots, strict=True) if sid and kind == "n")
            c = Complaint(t, "tune" if half == "A" else "test", text, present, negated)
            if c not in out:
                out.append(c)
                made += 1
    return out


def score(items: list[Complaint], parsed: list[tuple[set[str], set[str]]]) -> dict[str, float]:
    """Precision and recall of present and of negated symptoms (micro over complaints), and the share of complaints
    with both sets exactly right. ``parsed``: (present, negated) per complaint."""
    counts = {k: 0 for k in ("tp_p", "fp_p", "fn_p", "tp_n", "fp_n", "fn_n", "exact")}
    for c, (pres, neg) in zip(items, parsed, strict=True):
        counts["tp_p"] += len(pres & c.present)
        counts["fp_p"] += len(pres - c.present)
        counts["fn_p"] += len(c.present - pres)
        counts["tp_n"] += len(neg & c.negated)
        counts["fp_n"] += len(neg - c.negated)
        counts["fn_n"] += len(c.negated - neg)
        counts["exact"] += pres == c.present and neg == c.negated

    def ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    return {
        "present_precision": ratio(counts["tp_p"], counts["tp_p"] + counts["fp_p"]),
        "present_recall": ratio(counts["tp_p"], counts["tp_p"] + counts["fn_p"]),
        "negated_precision": ratio(counts["tp_n"], counts["tp_n"] + counts["fp_n"]),
        "negated_recall": ratio(counts["tp_n"], counts["tp_n"] + counts["fn_n"]),
        "exact_match": counts["exact"] / len(items),
        "complaints": float(len(items)),
    }
