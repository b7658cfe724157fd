"""Complaints as people write them (issue 18): lay synonyms, negation with scope and termination, pseudo-negations,
several symptoms per segment, severity words, and what was understood (spans, methods) or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from lay_complaints import (
    CLAUSES,
    FIRST_TEST_TEMPLATE,
    FREE_TEXT,
    FREE_TEXT_E,
    FREE_TEXT_F,
    NOUNS,
    PET,
    PSEUDO,
    complaints,
    score,
)

from carelens.settings import data_root
from carelens.symptoms import SymptomBundle, SymptomParser, load_kaggle_vocabulary


@pytest.fixture(scope="module")
def rules(data_dir: Path) -> SymptomParser:
    """The parser's rules and curated synonyms alone (no encoder): deterministic on any CPU."""
    return SymptomParser(load_kaggle_vocabulary(data_root() / "symptom_disease_kaggle41"))


@pytest.mark.parametrize(("text", "present", "negated"), [
    ("coughing a lot but I'm not out of breath", {"cough"}, {"breathlessness"}),
    ("I can't stop sneezing and my eyes are red", {"continuous_sneezing", "redness_of_eyes"}, set()),
    ("a slight temperature since yesterday", {"mild_fever"}, set()),
    ("a high temperature", {"high_fever"}, set()),
    ("no fever, or cough", set(), {"high_fever", "cough"}),
    ("she doesn't have diarrhoea or vomiting", set(), {"diarrhoea", "vomiting"}),
    ("it stings when I wee", {"burning_micturition"}, set()),
    ("my wee smells really bad", {"foul_smell_of_urine"}, set()),
    ("my tummy is swollen and tight", {"distention_of_abdomen"}, set()),
    ("my ankles are puffy", {"swollen_legs"}, set()),
    ("I had a fever last week but that's gone now, today it's a cough", {"cough"}, {"high_fever"}),
    ("not eating and no vomiting", {"loss_of_appetite"}, {"vomiting"}),
    ("headache, not dizziness", {"headache"}, {"dizziness"}),
    ("no rash but itchy skin", {"itching"}, {"skin_rash"}),
    ("denies chest pain; reports a sore throat", {"throat_irritation"}, {"chest_pain"}),
    ("I can't catch my breath and I can't smell anything", {"breathlessness", "loss_of_smell"}, set()),
    # context: "no blood" means the stool beside diarrhoea, the sputum beside a cough; alone it means nothing here
    ("diarrhoea since Monday, no blood", {"diarrhoea"}, {"bloody_stool"}),
    ("coughing up phlegm, no blood though", {"cough", "phlegm"}, {"blood_in_sputum"}),
    ("no blood", set(), set()),
    # pseudo-negation and resolution: "I don't feel sick", "wouldn't say", "he's fine today", "has gone blurry"
    ("I don't feel sick but I've got the runs", {"diarrhoea"}, {"nausea"}),
    ("I wouldn't say I'm breathless", set(), {"breathlessness"}),
    ("he was limping yesterday but he's fine today", set(), {"painful_walking"}),
    ("my vision has gone blurry", {"blurred_and_distorted_vision"}, set()),
    # frames: a site and a descriptor near each other, either order, a negation between them, a shared site
    ("my stomach doesn't hurt but my chest does", set(), {"stomach_pain"}),
    ("it hurts in the middle of my chest", {"chest_pain"}, set()),
    ("my nose won't stop running and my eyes are red and watery",
     {"runny_nose", "redness_of_eyes", "watering_from_eyes"}, set()),
    ("swelling in both ankles, my tummy isn't swollen", {"swollen_legs"}, {"distention_of_abdomen"}),
    ("my back is fine but my head hurts", {"headache"}, set()),  # no frame across a terminator
    ("she's off her food and her poo is runny", {"loss_of_appetite", "diarrhoea"}, set()),
])
def test_negation_scope_pseudo_negation_and_severity(rules: SymptomParser, text: str, present: set[str],
                                                      negated: set[str]) -> None:
    r = rules.parse(text)
    assert (set(r.present), set(r.absent)) == (present, negated), r.matches


def test_every_match_says_where_and_how_and_the_rest_is_not_understood(rules: SymptomParser) -> None:
    text = "My dog has itchy skin and no diarrhoea, and we moved house last week"
    r = rules.parse(text)
    assert {m["id"] for m in r.matches} == {"itching", "diarrhoea"}
    for m in r.matches:
        a, b = m["span"]  # type: ignore[misc]
        assert text[a:b] == m["text"] and m["method"] in ("phrase", "synonym")
    assert r.unmapped == ["we moved house last week"]  # without an encoder: reported, so the person can rephrase


def test_the_labelled_set_is_split_by_template_and_by_phrasing() -> None:
    items = complaints()
    assert len(items) >= 300 and {c.half for c in items} == {"tune", "test"}
    tune = {c.template for c in items if c.half == "tune"}
    assert tune.isdisjoint({c.template for c in items if c.half == "test"}) and max(tune) < FIRST_TEST_TEMPLATE
    test = [c for c in items if c.half == "test"]
    assert {c.pool for c in test} == {"F"} and len(test) >= 60 and sum(len(c.negated) for c in test) >= 30
    for pool in (NOUNS, CLAUSES, PET, PSEUDO):  # no phrasing in two pools
        assert all(len(set(v)) == 3 for v in pool.values())
    texts = [t.lower() for t, _, _ in FREE_TEXT + FREE_TEXT_E + FREE_TEXT_F]  # pools D-F: free text, no template
    assert len(set(texts)) == len(texts) and not set(texts) & {c.text.lower() for c in items if c.pool in "ABC"}
    assert sum(not c.present and not c.negated for c in items) >= 8  # sentences with no symptom at all
    assert sum(bool(c.negated) for c in items) >= 100 and sum(len(c.present) >= 2 for c in items) >= 60


def test_lay_complaints_with_the_encoder(symptom_bundle_dir: Path) -> None:
    parser = SymptomBundle.load(symptom_bundle_dir).parser
    items = complaints()
    figures = {}
    for half in ("tune", "test"):
        chosen = [c for c in items if c.half == half]
        parsed = [parser.parse(c.text) for c in chosen]
        figures[half] = score(chosen, [(set(p.present), set(p.absent)) for p in parsed])
    # measured (bench/results/symptom_parse.json): tune (pools A-E) exact 0.974; test (pool F, 65 free complaints,
    # blind) exact 0.892, present precision 0.973, negated recall 0.941 (32 of 34 negated symptoms). The
    # bounds leave room for a machine where an embedding near the threshold falls the other way.
    assert figures["tune"]["exact_match"] >= 0.9, figures["tune"]
    t = figures["test"]
    assert t["exact_match"] >= 0.8 and t["present_precision"] >= 0.92 and t["negated_recall"] >= 0.85, t


def test_misspelt_words_are_read_as_the_vocabulary_word(symptom_bundle_dir: Path, rules: SymptomParser) -> None:
    parser = SymptomBundle.load(symptom_bundle_dir).parser
    text = "Really bad hedache and diarhoea, no temprature"
    r = parser.parse(text)
    assert set(r.present) == {"headache", "diarrhoea"} and set(r.absent) == {"high_fever"}, r
    for m in r.matches:  # spans stay on the words as written
        a, b = m["span"]  # type: ignore[misc]
        assert text[a:b] == m["text"]
    assert {m["text"] for m in r.matches} >= {"hedache", "diarhoea", "temprature"}
    assert not parser.parse("we walked up the hills").present  # an English word one edit from "chills" stays
    assert not rules.parse("hedache").present  # without an encoder there is no word list to tell typos from words
    # the vocabulary's contexts travel in the bundle: "no blood" beside diarrhoea is read by the served parser too
    assert parser.vocab.get("bloody_stool").contexts and "bloody_stool" in parser.parse("the runs, no blood").absent


def test_frames_come_from_word_classes_and_an_unknown_class_is_a_clear_error(tmp_path: Path) -> None:
    from carelens.errors import DataError
    from carelens.symptoms import frames_of

    sites, words = next(f for f in frames_of("distention_of_abdomen"))
    assert {"tummy", "belly"} <= set(sites) and {"swollen", "bloated"} <= set(words)
    mine = tmp_path / "mine.yaml"
    mine.write_text("classes:\n  PAW: [paw, paws]\nlimping:\n  frames: [PAW PAIN, PAW SWOLLEN]\n")
    assert frames_of("limping", mine)[0] == (("paw", "paws"), frames_of("stomach_pain")[0][1])  # PAIN: the curated
    mine.write_text("limping:\n  frames: [PAWS PAIN]\n")
    with pytest.raises(DataError, match="unknown word class 'PAWS'"):
        frames_of("limping", mine)


def test_symptom_only_answers_from_a_curated_table_never_say_likely(symptom_bundle_dir: Path, data_dir: Path,
                                                                     tmp_path: Path) -> None:
    from carelens.symptoms import build_symptom_bundle

    text = "itchy skin, a rash, nodal skin eruptions and dischromic patches"  # the table's fungal infection
    curated = SymptomBundle.load(symptom_bundle_dir)
    assert curated.data == "curated_table"
    a, _ = curated.assess(text)
    assert a.top[0].probability >= 0.7 and a.confidence == "possible"  # sure enough for 'likely', said 'possible'
    assert "curated table" in a.triage.reason and "not validated" in a.triage.reason
    b, _ = curated.assess("coughing a lot but I'm not out of breath")  # the example: no 'likely asthma'
    assert b.confidence != "likely"
    build_symptom_bundle(data_dir / "symptom_disease_kaggle41", tmp_path / "real", real_cases=True)
    real = SymptomBundle.load(tmp_path / "real", encoder=curated.parser.encoder)
    c, _ = real.assess(text)  # the same table recorded as real cases: the cap comes from the record
    assert real.data == "real_cases" and c.confidence == "likely" and "curated" not in c.triage.reason
