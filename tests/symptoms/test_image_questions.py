"""The image's own questions (issue 18, item 4): with a skin-lesion photo, "it has grown and bleeds" answers the
lesion's questions (the HAM10000 spec's vocabulary), not the general symptom table's ("no bleeding" is not
`stomach_bleeding` absent), and the answers are scored with the weighted 7-point checklist (NICE NG12 1.7.2): a
score of 3 or more raises the triage level to at least `consultation_24`, never lowers it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carelens.labels import load_spec
from carelens.policy import ModelRef, decide
from carelens.symptoms import SymptomBundle, triage


@pytest.fixture(scope="module")
def benign_photo():  # type: ignore[no-untyped-def]
    """A photo the model is sure shows a naevus (self care): what the person says is all that can raise it."""
    spec = load_spec("ham10000")
    p = np.full(len(spec.classes), 0.005)
    p[spec.class_ids.index("nv")] = 1 - 0.005 * (len(spec.classes) - 1)
    mask = np.asarray([c == "nv" for c in spec.class_ids])
    return spec, decide(p, mask, spec=spec, model=ModelRef(name="skin", version="1"), coverage=0.9)


def test_answers_to_the_lesion_questions_are_scored_and_raise_the_level(benign_photo, symptom_bundle_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec, image = benign_photo
    assert image.triage.level == "self_care"
    symptoms = SymptomBundle.load(symptom_bundle_dir)
    out = triage(image=image, text="it has grown and gone darker, no bleeding, and I have a headache",
                 symptoms=symptoms, image_spec=spec)
    q = out["symptoms"]["image_questions"]
    assert set(q["present"]) == {"lesion_grown", "lesion_colour_changed"} and q["absent"] == ["lesion_bleeds"]
    assert q["checklist"]["score"] == 4 and q["checklist"]["met"] and "NG12" in q["checklist"]["reference"]
    a = out["assessment"]
    assert a["triage"]["level"] == "consultation_24" and "7-point checklist" in a["triage"]["reason"]
    assert "symptoms" in a["based_on"]
    general = out["symptoms"]
    assert "stomach_bleeding" not in general["absent"] and "headache" in general["present"]  # the rest of the text


def test_a_low_score_leaves_the_level_and_no_symptom_bundle_is_needed(benign_photo) -> None:  # type: ignore[no-untyped-def]
    spec, image = benign_photo
    out = triage(image=image, text="it itches a bit but it is not raised", symptoms=None, image_spec=spec)
    q = out["symptoms"]["image_questions"]
    assert q["present"] == ["lesion_sensation"] and q["absent"] == ["lesion_raised"]
    assert q["checklist"]["score"] == 1 and not q["checklist"]["met"]
    assert out["assessment"]["triage"]["level"] == "self_care"  # the photo's own level: 1 point calls for nothing


def test_specs_without_questions_read_back_unchanged() -> None:
    spec = load_spec("pneumoniamnist")
    assert spec.symptoms == () and spec.checklist is None
    assert "symptoms" not in spec.to_dict() and "checklist" not in spec.to_dict()  # old bundles keep their digests


def test_a_word_that_is_also_a_general_symptom_reaches_both(benign_photo, symptom_bundle_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """"itching" answers the lesion's question (change in sensation) and is a symptom of the general table: both
    hear it (the lesion's answer alone once swallowed it, and a photo sent after "itching on my back for weeks" was
    answered from the image only; bench/scenarios.py, 2 of 24 owner scenarios)."""
    spec, image = benign_photo
    out = triage(image=image, text="itching all over, a red rash on my arms, no fever",
                 symptoms=SymptomBundle.load(symptom_bundle_dir), image_spec=spec)
    assert out["symptoms"]["image_questions"]["present"] == ["lesion_sensation"]
    assert {"itching", "skin_rash"} <= set(out["symptoms"]["present"]) and out["symptoms"]["used"]
    assert set(out["assessment"]["based_on"]) == {"image", "symptoms"}
