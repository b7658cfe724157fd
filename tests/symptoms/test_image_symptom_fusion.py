"""Image and symptoms over the same conditions: log-linear pooling with a weight fitted on paired validation
cases, kept in the symptom bundle per image model, used by `carelens triage`, `/v1/triage` and `/v1/chat`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from carelens.cli import app
from carelens.data import (
    DOG_SKIN,
    ManifestFormat,
    make_splits,
    read_manifest,
    synthetic_skin_image,
    write_synthetic_dog_cases,
)
from carelens.errors import ConfigError
from carelens.labels import load_spec
from carelens.metrics import classification_metrics
from carelens.policy import ModelRef
from carelens.serve import ServeSettings, create_app
from carelens.symptoms import ImageSymptomFusion, SymptomBundle

REF = ModelRef(name="dog_skin", version="1")


def _sources(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Known structure over 4 classes: the image confuses 0<->1 and 2<->3; the symptoms confuse 0<->2 and 1<->3.
    Each alone is right about 65% of the time; together they pin the class down."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    img = np.full((n, 4), 0.02)
    sym = np.full((n, 4), 0.02)
    for i, c in enumerate(y):
        for probs, partner in ((img, c ^ 1), (sym, c ^ 2)):
            shown = c if rng.random() < 0.65 else partner
            probs[i, shown] += 0.55
            probs[i, shown ^ (1 if probs is img else 2)] += 0.35
    return img / img.sum(1, keepdims=True), sym / sym.sum(1, keepdims=True), y


def test_pooling_beats_each_source_and_a_silent_report_changes_nothing() -> None:
    ids = ["a", "b", "c", "d"]
    fusion = ImageSymptomFusion(ids, ["d", "c", "b", "a", "x"], np.full(5, 0.2), image_model=REF)
    iv, sv, yv = _sources(600, 0)
    it, st, yt = _sources(600, 1)
    order = [3, 2, 1, 0]  # the symptom model lists the classes in another order, plus one the image lacks
    as_sym = lambda p: np.c_[p[:, order], np.full(len(p), 0.01)]
    fusion.fit(iv, as_sym(sv), yv)
    assert fusion.weight > 0.3
    fused, mask, _ = fusion.fuse(it, as_sym(st))
    ba = {name: classification_metrics(yt, p, ids)["balanced_accuracy"] for name, p in
          (("image", it), ("symptoms", st), ("fused", fused))}
    assert ba["fused"] > max(ba["image"], ba["symptoms"]) + 0.1, ba
    assert mask.any(1).all()
    # nothing reported: the image's distribution exactly (the image keeps weight 1)
    same, _, _ = fusion.fuse(it[:5], as_sym(st[:5]), reported=np.zeros(5, bool))
    np.testing.assert_allclose(same, it[:5], atol=1e-9)
    # stored as plain JSON, the same answers after a round trip
    back = ImageSymptomFusion.from_dict(json.loads(json.dumps(fusion.to_dict())))
    np.testing.assert_allclose(back.fuse(it, as_sym(st))[0], fused)
    with pytest.raises(ConfigError, match="share no"):
        ImageSymptomFusion(ids, ["x", "y"], np.full(2, 0.5), image_model=REF)


@pytest.fixture(scope="module")
def dog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated dog skin cases; an image model (frozen features at 64 px) and a symptom bundle over the same
    six condition ids."""
    from carelens.steps import calibrate_run
    from carelens.steps.export import export_run
    from carelens.symptoms import build_symptom_bundle, load_symptom_table
    from carelens.train import TrainConfig, train

    root = tmp_path_factory.mktemp("dog")
    data = write_synthetic_dog_cases(root / "data", n=360, seed=0, size=64, table_rows=600)
    spec = load_spec("dog_skin")
    ds = read_manifest(data / "cases.csv", ManifestFormat()).with_spec(spec)
    assert ds.has_official_split and not any(e.facts for e in ds) and any(e.symptoms for e in ds)
    train(ds, make_splits(ds), TrainConfig.from_dict({"image_size": 64, "head_epochs": 30, "finetune_epochs": 0,
                                                      "threads": 2}), root / "run")
    calibrate_run(root / "run")
    models = root / "models"
    export_run(root / "run", models / "dog_skin", name="dog_skin", version="1")
    build_symptom_bundle(load_symptom_table(data / "symptom_table.csv", spec=spec, species="dog"), root / "symptoms",
                         synthetic=True)
    return {"data": data, "models": models, "symptoms": root / "symptoms", "root": root}


def _clear_skin_png() -> bytes:
    """A photo with no mark: healthy skin, or a skin mass the photo does not show (35% of such photos)."""
    buf = io.BytesIO()
    Image.fromarray(synthetic_skin_image({}, seed=5, size=64)).save(buf, "PNG")
    return buf.getvalue()


def test_fuse_command_fits_on_val_and_measures_on_test(dog: dict[str, Path]) -> None:
    r = CliRunner().invoke(app, ["symptoms", "fuse", str(dog["symptoms"]), "--model", str(dog["models"] / "dog_skin"),
                                 "--pairs", str(dog["data"] / "cases.csv")])
    assert r.exit_code == 0, r.output
    assert "fused" in r.output and "synthetic table" in r.output
    doc = json.loads((dog["symptoms"] / "symptoms.json").read_text())
    kept = doc["image_fusion"]["dog_skin"]
    assert kept["image_model"] == {"name": "dog_skin", "version": "1"} and kept["pooling"]["weights"][0] == 1.0
    t = kept["figures"]["test"]
    # the generated structure: each source alone is unsure in a different way; pooled, both are beaten
    assert t["balanced_accuracy_fused"] > max(t["balanced_accuracy_image"], t["balanced_accuracy_symptoms"]) + 0.05, t
    assert t["critical_miss_rate_fused"] <= t["critical_miss_rate_image"]
    sym = SymptomBundle.load(dog["symptoms"])
    assert sym.fusion_for(REF) is not None and sym.fusion_for(ModelRef(name="dog_skin", version="2")) is None


def test_pairs_without_a_split_column_are_refused(dog: dict[str, Path], tmp_path: Path) -> None:
    lines = (dog["data"] / "cases.csv").read_text().splitlines()
    (dog["data"] / "nosplit.csv").write_text("\n".join(",".join(x.split(",")[:3]) for x in lines))
    r = CliRunner().invoke(app, ["symptoms", "fuse", str(dog["symptoms"]), "--model", str(dog["models"] / "dog_skin"),
                                 "--pairs", str(dog["data"] / "nosplit.csv")])
    assert r.exit_code != 0 and "needs a 'split' column" in r.output


def test_triage_and_chat_pool_image_and_symptoms(dog: dict[str, Path]) -> None:
    test_fuse_command_fits_on_val_and_measures_on_test(dog)
    assert DOG_SKIN["skin_mass"][1] == "healthy_skin"
    png = _clear_skin_png()
    text = "a swelling that she keeps licking"
    s = ServeSettings(models_dir=dog["models"], symptoms_dir=dog["symptoms"],
                      database_url=f"sqlite:///{dog['root'] / 'serve.db'}")
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/triage", data={"species": "dog", "text": text}, files={"image": ("dog.png", png, "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        a, image = body["assessment"], body["sources"]["image"]
        assert a["based_on"] == ["image", "symptoms"] and body["symptoms"]["used"]
        assert set(a["probabilities"]) == set(load_spec("dog_skin").class_ids)
        # pooled, not just the image's finding with a triage level on top: the distribution moved
        assert a["probabilities"] != image["probabilities"]
        assert a["probabilities"]["skin_mass"] > image["probabilities"]["skin_mass"]
        rank = ["self_care", "consultation", "consultation_24", "emergency", "emergency_ambulance"]
        assert rank.index(a["triage"]["level"]) >= rank.index(image["triage"]["level"])  # never less urgent
        chat = c.post("/v1/chat", data={"species": "dog", "message": text},
                      files={"image": ("dog.png", png, "image/png")}).json()
        assert chat["assessment"]["based_on"] == ["image", "symptoms"]
        assert chat["assessment"]["probabilities"] == a["probabilities"]
    # the CLI says the same
    photo = dog["root"] / "mass.png"
    photo.write_bytes(png)
    r = CliRunner().invoke(app, ["triage", "--model", str(dog["models"] / "dog_skin"), "--image", str(photo),
                                 "--symptoms", text, "--symptom-model", str(dog["symptoms"]), "--species", "dog", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["assessment"]["probabilities"] == a["probabilities"]


def test_data_synth_dog_writes_cases_and_a_symptom_table(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["data", "synth", "dog", "--out", str(tmp_path / "d"), "--n", "40", "--size", "32"])
    assert r.exit_code == 0, r.output
    ds = read_manifest(tmp_path / "d" / "cases.csv").with_spec(load_spec("dog_skin"))
    assert len(ds) == 40 and {e.split for e in ds} <= {"train", "val", "test"}
    vocab = {s for _, _, profile in DOG_SKIN.values() for s in profile}
    assert all(set(e.symptoms) <= vocab for e in ds)
    header = (tmp_path / "d" / "symptom_table.csv").read_text().splitlines()[0]
    assert header.startswith("Disease,Symptom 1")
