from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from carelens.data import read_folder
from carelens.errors import LabelSpecError
from carelens.labels import (
    TRIAGE_LEVELS,
    LabelSpec,
    builtin_specs,
    label_problems,
    load_spec,
    spec_from_labels,
    template_spec,
    triage_rank,
)


def test_builtin_specs_load() -> None:
    assert {"ham10000", "busi", "busi_binary", "pneumoniamnist", "vet_dog_cat"} <= set(builtin_specs())
    ham = load_spec("ham10000")
    assert ham.class_ids == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert {c.id for c in ham.classes if c.is_critical} == {"akiec", "bcc", "mel"}
    vet = load_spec("vet_dog_cat")
    groups = {c.group for c in vet.classes}
    assert {"skin", "eye", "ear", "dental", "respiratory", "digestive", "general"} <= groups
    assert "uncertain_other" in vet.class_ids and any(c.startswith("healthy_") for c in vet.class_ids)


def test_labels_without_a_spec_are_class_ids_or_a_clear_error() -> None:
    plain = spec_from_labels("busi", ["benign", "malignant", "normal"])
    assert plain.class_ids == ["benign", "malignant", "normal"] and not any(c.is_critical for c in plain.classes)
    with pytest.raises(LabelSpecError, match=r"'Malignant Tumour', 'a\[1\]' cannot be class ids.*specs --init"):
        spec_from_labels("scans", ["Malignant Tumour", "benign", "a[1]"])


def test_a_template_spec_maps_every_label_onto_an_id() -> None:
    labels = ["Malignant Tumour", "benign", "a[1]", "A 1", "ear/ear mites", "ünknown"]
    spec = template_spec("My Scans", [*labels, "Benign ", "MALIGNANT  tumour"])
    assert spec.name == "my_scans" and spec.class_ids == ["malignant_tumour", "benign", "a_1", "a_1_2", "ear_ear_mites",
                                                           "unknown"]
    assert [c.name for c in spec.classes] == labels  # shown as the data names them
    assert spec.map_labels(labels) == spec.class_ids  # brackets matched literally, not as a pattern
    # spellings that differ only in case or spacing are one class, as the audit says
    assert spec.map_labels(["Benign ", "MALIGNANT  tumour"]) == ["benign", "malignant_tumour"]
    same, not_id = label_problems(["Benign ", "benign", "normal"])
    assert same.startswith("labels 'Benign ', 'benign' differ only in case or spacing") and "merges them" in same
    assert not_id.startswith("the label 'Benign ' cannot be a class id") and "specs --init" in not_id
    assert label_problems(["benign", "normal"]) == []
    # written and read back as YAML, it is the same spec
    assert LabelSpec.from_yaml(yaml.safe_dump(spec.to_dict())) == spec


def test_triage_order() -> None:
    assert [triage_rank(t) for t in TRIAGE_LEVELS] == list(range(5))
    with pytest.raises(LabelSpecError, match="unknown triage level"):
        triage_rank("whenever")


def test_merge_rules_reorganise_without_moving_files(busi_dir: Path) -> None:
    ds = read_folder(busi_dir).with_spec(load_spec("busi_binary"))
    assert ds.class_counts() == {"malignant": 210, "not_malignant": 570}
    assert {e.source_label for e in ds if e.label == "not_malignant"} == {"benign", "normal"}


def test_nested_folders_and_patterns() -> None:
    vet = load_spec("vet_dog_cat")
    got = vet.map_labels(["skin/atopic_dermatitis", "ear/ear_mites", "hotspot", "eye/corneal_ulcer", "misc/blurry"])
    assert got == ["allergic_dermatitis", "otitis", "hot_spot", "corneal_ulcer", "uncertain_other"]


def test_unknown_labels_are_named(busi_dir: Path) -> None:
    ds = read_folder(busi_dir)
    with pytest.raises(LabelSpecError, match=r"does not know the source labels 'benign', 'malignant'\. Its classes are normal, pneumonia"):
        ds.with_spec(load_spec("pneumoniamnist"))


def test_class_without_examples_is_an_error(tmp_path: Path, busi_dir: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: t\nclasses:\n"
        "  - {id: benign, name: B}\n  - {id: malignant, name: M}\n  - {id: normal, name: N}\n"
        "  - {id: cyst, name: Cyst}\n"
    )
    with pytest.raises(LabelSpecError, match="classes with no examples in this data: cyst"):
        read_folder(busi_dir).with_spec(load_spec(spec))


def test_drop_rule(busi_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: t\nclasses:\n  - {id: benign, name: B}\n  - {id: malignant, name: M}\ndrop: [normal]\n")
    ds = read_folder(busi_dir).with_spec(load_spec(spec))
    assert len(ds) == 437 + 210


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("classes: [", "not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("name: t\nclasses:\n  - {id: a, name: A}\n  - {id: a, name: A2}\n", "repeated: a"),
        ("name: t\nclasses:\n  - {id: a, name: A, triage: later}\n  - {id: b, name: B}\n", "classes.0.triage"),
        ("name: t\nclasses:\n  - {id: a, name: A}\n  - {id: b, name: B}\nmerge:\n  - {from: [x], to: c}\n",
         "not defined: c"),
        ("name: t\nclasses:\n  - {id: a, name: A}\n", "classes"),
    ],
)
def test_bad_specs_say_what_is_wrong(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(LabelSpecError, match=match):
        load_spec(p)


def test_unknown_spec_name() -> None:
    with pytest.raises(LabelSpecError, match="built-in specs"):
        load_spec("nonexistent_spec")
