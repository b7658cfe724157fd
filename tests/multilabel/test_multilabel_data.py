"""Multi-label data: the generator's layout, the folder/manifest/ODIR-5K readers, splits and the audit."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from carelens.data import (
    SYNTH_CONDITIONS,
    audit_dataset,
    make_splits,
    odir_eye_findings,
    open_dataset,
    read_condition_folder,
    write_synthetic_multilabel,
)
from carelens.errors import DataError, LabelSpecError
from carelens.labels import load_spec
from carelens.tasks import OutputLayout, encode_findings


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_multilabel(tmp_path_factory.mktemp("synth") / "output_images", n=240, seed=3, size=64)


def test_generator_writes_the_documented_layout(synth: Path) -> None:
    jsons = sorted(synth.glob("*/*/*.json"))
    assert jsons and all(j.with_suffix(".png").is_file() for j in jsons)
    summary = json.loads(next(synth.glob("dataset_summary_*.json")).read_text())
    assert summary["images"] == len(jsons)
    for j in jsons:
        doc = json.loads(j.read_text())
        condition, severity = j.parent.parent.name, j.parent.name
        assert doc["image_filename"] == j.with_suffix(".png").name
        if condition == "healthy":
            assert severity in ("clear_skin", "minimal_concerns", "well_maintained")
            assert not any((doc.get("classification_targets") or {}).values())
        else:
            assert severity in SYNTH_CONDITIONS[condition] and doc["severity"] == severity
        if "classification_targets" in doc:
            assert set(doc["classification_targets"]) == set(SYNTH_CONDITIONS)
            assert set(doc["demographics"]) == {"age_group", "skin_tone", "gender"}
            for c, present in doc["classification_targets"].items():
                assert (doc["severity_targets"][c] != "none") == present
    assert any("_flipped" in j.name for j in jsons), "some images have mirrored twins"
    assert any("classification_targets" not in json.loads(j.read_text()) for j in jsons), "some short annotations"


def test_reader_keeps_every_condition_groups_twins_and_reads_demographics(synth: Path) -> None:
    ds = open_dataset(synth, "skin_conditions")
    assert ds.multilabel and ds.source == "condition_folder" and len(ds) == len(list(synth.glob("*/*/*.png")))
    by_id = {e.id: e for e in ds}
    for j in synth.glob("*/*/*.json"):
        doc = json.loads(j.read_text())
        e = by_id[j.with_suffix(".png").relative_to(synth).as_posix()]
        if "classification_targets" in doc:
            want = {c: doc["severity_targets"][c] for c, v in doc["classification_targets"].items() if v}
            assert dict(e.findings or {}) == want
            assert e.facts["skin_tone"] == doc["demographics"]["skin_tone"]
        elif doc["skin_condition"] == "healthy":
            assert e.findings == {} and e.label == "none"
        else:
            assert dict(e.findings or {}) == {doc["skin_condition"]: doc["severity"]}
    twins = [e for e in ds if e.id.endswith("_flipped.png")]
    assert twins and all(by_id[t.id.replace("_flipped", "")].group == t.group for t in twins)
    splits = make_splits(ds, seed=0)
    assert all(splits.assignment[t.id] == splits.assignment[t.id.replace("_flipped", "")] for t in twins)


def test_unknown_severity_and_wrong_spec_are_clear_errors(synth: Path, tmp_path: Path) -> None:
    with pytest.raises(LabelSpecError, match="is multiclass but dataset .* is multi-label"):
        open_dataset(synth, "busi")  # a single-label spec on multi-label data
    bad = tmp_path / "bad"
    (bad / "acne" / "extreme").mkdir(parents=True)
    src = next(synth.glob("acne/*/*.png"))
    (bad / "acne" / "extreme" / "x.png").write_bytes(src.read_bytes())
    (bad / "acne" / "extreme" / "x.json").write_text(json.dumps({"skin_condition": "acne", "severity": "extreme"}))
    with pytest.raises(LabelSpecError, match="no severity level 'extreme'.*mild, moderate, severe"):
        open_dataset(bad, "skin_conditions")
    (bad / "acne" / "extreme" / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot be read"):
        read_condition_folder(bad)


def test_multilabel_manifest_with_severity_columns(synth: Path, tmp_path: Path) -> None:
    ds = open_dataset(synth, "skin_conditions")
    conds = list(SYNTH_CONDITIONS)
    rows = []
    for e in list(ds)[:40]:
        f = e.findings or {}
        rows.append({"path": str(e.path), "group": e.group, "age": 30,
                     **{c: int(c in f) for c in conds}, **{f"severity_{c}": f.get(c) or "" for c in conds}})
    man = tmp_path / "labels.csv"
    with man.open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    m = open_dataset(man, "skin_conditions")
    assert [dict(e.findings or {}) for e in m] == [dict(e.findings or {}) for e in list(ds)[:40]]
    assert m[0].facts == {"age": 30}
    rows[0]["acne"] = "maybe"
    with man.open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DataError, match="row 2: condition column 'acne' holds 'maybe'"):
        open_dataset(man, "skin_conditions")


def test_iterative_stratification_gives_every_split_every_cell(synth: Path) -> None:
    ds = open_dataset(synth, "skin_conditions")
    splits = make_splits(ds, (0.6, 0.2, 0.2), seed=1)
    cells = Counter((c, lv) for e in ds for c, lv in (e.findings or {}).items())
    for split in ("val", "test"):
        got = Counter((c, lv) for i in splits.indices(ds, split) for c, lv in (ds[i].findings or {}).items())
        for cell, n in cells.items():
            assert got[cell] >= 1, f"{split} lacks {cell} ({n} in all)"
            assert abs(got[cell] / n - 0.2) < 0.2  # near its share, far from all-or-nothing
    assert make_splits(ds, (0.6, 0.2, 0.2), seed=1).assignment == splits.assignment  # seeded


def test_audit_reports_cooccurrence_and_small_cells(synth: Path) -> None:
    ds = open_dataset(synth, "skin_conditions")
    r = audit_dataset(ds)
    m = r.multilabel
    assert m is not None
    counts = ds.class_counts()
    assert m["positives"] == counts
    assert all(m["co_occurrence"][a][b] == m["co_occurrence"][b][a] for a in counts for b in counts)
    pairs = Counter(frozenset((a, b)) for e in ds for a in (e.findings or {}) for b in (e.findings or {}) if a < b)
    a, b = sorted(next(iter(pairs.most_common(1)))[0])
    assert m["co_occurrence"][a][b] == pairs[frozenset((a, b))]
    assert sum(m["severity_cells"]["acne"].values()) == counts["acne"]
    assert m["small_cells"] and any("condition x severity cell" in w for w in r.warnings)  # 240 images: cells < 30
    assert [c.count for c in r.classes] == list(counts.values())


def test_encode_and_layout_round_trip() -> None:
    spec = load_spec("skin_conditions")
    row = encode_findings(spec, {"redness": "severe", "acne": None})
    layout = OutputLayout.of(spec, "ordinal")
    import numpy as np

    presence, levels = layout.split_targets(np.asarray([row]))
    k = spec.index("redness")
    assert presence[0].tolist() == [int(c in ("redness", "acne")) for c in spec.class_ids]
    assert levels[0, k] == 2 and levels[0, spec.index("acne")] == -1
    assert layout.width == 7 + 7 * 2 and OutputLayout.of(spec).width == 7 + 7 * 3


# -- ODIR-5K (real data) ----------------------------------------------------------------------------------


def test_odir_keyword_mapping() -> None:
    assert odir_eye_findings("normal fundus") == {"N": None}
    assert odir_eye_findings("laser spot，moderate non proliferative retinopathy") == {"D": "moderate", "O": None}
    assert odir_eye_findings("lens dust，normal fundus") == {"N": None}
    assert odir_eye_findings("severe proliferative diabetic retinopathy") == {"D": "proliferative"}
    assert odir_eye_findings("diabetic retinopathy, drusen") == {"D": None, "O": None}
    assert odir_eye_findings("low image quality") == {}


def test_odir_per_eye_labels_match_the_documented_counts(data_dir: Path) -> None:
    root = data_dir / "odir5k"
    if not root.is_dir():
        pytest.skip(f"{root} is missing")
    ds = open_dataset("odir5k")
    assert len(ds) == 6392 and ds.spec is not None and ds.spec.name == "odir5k"
    # SOURCES.md section 8: per image N 2873, D 1722, G 313, C 301, A 279, H 192, M 256, O 880; 418 with >= 2
    assert ds.class_counts() == {"normal": 2873, "diabetic_retinopathy": 1722, "glaucoma": 313, "cataract": 301,
                                 "amd": 279, "hypertensive_retinopathy": 192, "myopia": 256, "other": 880}
    assert sum(len(e.findings or {}) >= 2 for e in ds) == 418
    assert any("1329 of 6392 images differ" in n for n in ds.notes)
    # the keyword mapping, applied to both eyes of every patient (N only when nothing else), reproduces the
    # CSV's per-patient label columns (SOURCES.md)
    with (root / "full_df.csv").open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    names = ("Normal", "Diabetes", "Glaucoma", "Cataract", "Age related Macular Degeneration", "Hypertension",
             "Pathological Myopia", "Other diseases/abnormalities")
    cols = [next(c for c in rows[0] if c.strip() == n) for n in names]
    for row in rows:
        labels = set(odir_eye_findings(row["Left-Diagnostic Keywords"])) | set(odir_eye_findings(row["Right-Diagnostic Keywords"]))
        labels = labels - {"N"} if len(labels) > 1 else labels
        assert labels == {"NDGCAHMO"[i] for i, c in enumerate(cols) if row[c] == "1"}, row["ID"]
    grades = Counter((e.findings or {}).get("diabetic_retinopathy") for e in ds if "diabetic_retinopathy" in (e.findings or {}))
    assert grades == {"moderate": 947, "mild": 538, "severe": 157, None: 51, "proliferative": 29}
    groups = {e.id: e.group for e in ds}
    assert groups["973_left.jpg"] == groups["352_left.jpg"] and groups["3185_right.jpg"] == groups["2487_right.jpg"]
    splits = make_splits(ds, seed=0)
    by_group: dict[str, set[str]] = {}
    for e in ds:
        by_group.setdefault(str(e.group), set()).add(splits.assignment[e.id])
    assert all(len(s) == 1 for s in by_group.values()), "a patient's eyes never cross splits"
