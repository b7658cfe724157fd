"""Bring your own symptom table: the livestock table (synthetic: a plumbing test, never clinical evidence) and
a small generated dog table in the 0/1 shape, each built into a species-specific symptom bundle."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from carelens.cli import app
from carelens.errors import DataError
from carelens.symptoms import SymptomBundle, build_symptom_bundle, load_symptom_table, split_patterns

DOG = {  # condition -> its typical symptoms (a generated table: known structure, no clinical claim)
    "gastroenteritis": ["vomiting", "diarrhoea", "loss_of_appetite", "lethargy"],
    "kennel_cough": ["cough", "runny_nose", "continuous_sneezing", "mild_fever"],
    "allergic_dermatitis": ["itching", "skin_rash", "hair_loss", "redness_of_skin"],
}


def _dog_table(path: Path, n: int = 240, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    symptoms = sorted({s for v in DOG.values() for s in v})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["age", *symptoms, "Disease"])
        for i in range(n):
            cond = list(DOG)[i % 3]
            shown = set(rng.choice(DOG[cond], size=int(rng.integers(2, 5)), replace=False))
            w.writerow([int(rng.integers(1, 15)), *(int(s in shown) for s in symptoms), cond])
    return path


def test_livestock_table_builds_a_cattle_bundle(data_dir: Path, tmp_path: Path) -> None:
    table = data_dir / "veterinary" / "livestock_disease_symptoms_synthetic" / "animal_disease_dataset.csv"
    if not table.is_file():
        pytest.skip(f"{table} is missing")
    t = load_symptom_table(table, species="cattle")
    assert t.spec.species == ("cattle",) and len(t.spec.classes) >= 2 and t.X.shape[0] == len(t.y)
    assert "loss_of_appetite" in t.vocab.ids and t.X.sum(1).min() >= 1  # every case names symptoms
    with table.open(newline="") as f:
        assert t.X.shape[0] == sum(1 for _ in f) - 1
    # the table repeats its few patterns thousands of times: a pattern lies in one split only (held out for real)
    parts = split_patterns(t.X, t.y)
    assert sum(len(p) for p in parts) == len(t.y) and len(np.unique(np.concatenate(parts))) == len(t.y)
    seen = [{row.tobytes() for row in t.X[p]} for p in parts]
    assert all(seen) and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    metrics = build_symptom_bundle(t, tmp_path / "cattle", synthetic=True)
    assert metrics["patterns"]["test"] == len(seen[2]) and metrics["rows"]["test"] == len(parts[2])
    assert metrics["top3_accuracy_3_reported"] > 1 / len(t.spec.classes) * 3  # above chance on held-out patterns
    b = SymptomBundle.load(tmp_path / "cattle")
    a, parsed = b.assess("the cow has painless lumps and a loss of appetite, she seems depressed")
    assert "painless_lumps" in parsed.present and a.confidence != "likely"  # synthetic: never 'likely' alone
    assert b.spec.serves("cattle") and not b.spec.serves("human")


def test_generated_dog_table_in_the_binary_shape(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["symptoms", "build", "--table", str(_dog_table(tmp_path / "dog.csv")),
                                   "--species", "dog", "--out", str(tmp_path / "dog")])
    assert res.exit_code == 0, res.output
    b = SymptomBundle.load(tmp_path / "dog")
    assert b.spec.species == ("dog",) and b.spec.provider == "veterinarian"
    assert set(b.spec.class_ids) == set(DOG) and "age" not in b.vocab.ids  # facts are not symptoms
    a, _ = b.assess("my dog keeps throwing up and has diarrhea, not eating")
    assert a.top[0].id == "gastroenteritis"
    a, _ = b.assess("itchy dog with a red rash, no vomiting")
    assert a.top[0].id == "allergic_dermatitis"


def test_a_table_without_labels_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Symptom 1,Symptom 2\ncough,fever\n")
    with pytest.raises(DataError, match="no label column"):
        load_symptom_table(bad)


def test_a_table_too_small_to_validate_is_a_clear_error(tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    small.write_text("Disease,Symptom_1,Symptom_2\nflu,fever,cough\ncold,sneezing,cough\ncold,sneezing,runny nose\n"
                     "cold,sore throat,cough\nflu,fever,headache\n")
    # it ended in a numpy matmul ValueError with a traceback (an empty validation split)
    with pytest.raises(DataError, match=r"too few distinct cases .* these have fewer: flu 2$"):
        build_symptom_bundle(load_symptom_table(small), tmp_path / "out")


def test_a_synonym_file_to_fill_for_your_own_table(tmp_path: Path) -> None:
    import yaml

    from carelens.symptoms import SymptomParser

    table = _dog_table(tmp_path / "dog.csv")
    syn = tmp_path / "synonyms.yaml"
    res = CliRunner().invoke(app, ["symptoms", "synonyms", "--table", str(table), "--out", str(syn)])
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(syn.read_text())
    assert set(doc) - {"classes"} == {s for v in DOG.values() for s in v} and "throwing up" in doc["vomiting"]["synonyms"]
    assert doc["diarrhoea"]["frames"] == ["POO LOOSE"] and "runny" in doc["classes"]["LOOSE"]  # to reuse and extend
    text = "my dog is losing fur but there's no pink skin, and his poo isn't runny"
    before = SymptomParser(load_symptom_table(table).vocab).parse(text)  # rules only: no encoder to guess
    assert before.present == [] and before.absent == ["diarrhoea"]  # a curated frame, with its negation inside
    doc["hair_loss"]["synonyms"] = ["losing fur", "bald patches"]
    doc["redness_of_skin"]["synonyms"] = ["pink skin"]
    syn.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(app, ["symptoms", "build", "--table", str(table), "--species", "dog", "--synonyms",
                                   str(syn), "--out", str(tmp_path / "dog")])
    assert res.exit_code == 0, res.output
    after = SymptomParser(SymptomBundle.load(tmp_path / "dog").vocab).parse(text)  # the same negation handling
    assert (after.present, after.absent) == (["hair_loss"], ["redness_of_skin", "diarrhoea"])
    again = CliRunner().invoke(app, ["symptoms", "synonyms", "--table", str(table), "--out", str(syn)])
    assert again.exit_code == 1 and "exists" in again.output  # never overwrites your edits
