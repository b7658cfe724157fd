"""Clinical facts (HAM10000's age, sex, site) fused with the image model, end to end on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from carelens.bundle import FORMAT_VERSION, load_bundle
from carelens.cli import app
from carelens.data import open_dataset
from carelens.errors import ConfigError
from carelens.fusion import FactsFusion, parse_fact_pairs
from carelens.predict import Engine

runner = CliRunner()


@pytest.fixture(scope="module")
def engine(ham_bundle: Path) -> Engine:
    return Engine(load_bundle(ham_bundle))


@pytest.fixture(scope="module")
def test_cases(tiny_ham_run: Path, ham: object) -> dict[str, object]:
    """The tiny run's test split: image probabilities, labels, ids and real facts."""
    with np.load(tiny_ham_run / "predictions.npz") as z:
        a = {k: z[k] for k in z.files}
    by_id = {e.id: e for e in ham}  # type: ignore[attr-defined]
    return {"a": a, "facts": [dict(by_id[str(i)].facts) for i in a["test_ids"]], "by_id": by_id}


def test_calibrate_fits_facts_and_the_bundle_carries_them(tiny_ham_run: Path, ham_bundle: Path) -> None:
    rep = json.loads((tiny_ham_run / "calibration.json").read_text())["facts"]
    assert rep["schema"]["age"]["type"] == "number" and rep["schema"]["age"]["min"] == 0
    assert {"male", "female"} <= set(rep["schema"]["sex"]["values"]) and "back" in rep["schema"]["localization"]["values"]
    t = rep["test"]
    assert t["weights"]["image"] == 1.0 and 0 < t["weights"]["facts"] <= 5
    # the fused model is measured against the image alone on the same test images
    assert t["nll"] < t["nll_image"] + 0.05 and 0.8 <= t["coverage"] <= 1.0
    spec = json.loads((ham_bundle / "bundle.json").read_text())
    assert spec["format_version"] == FORMAT_VERSION and spec["facts"]["fusion"]["weights"] == [1.0, t["weights"]["facts"]]


def test_neutral_facts_leave_the_image_distribution_unchanged(engine: Engine) -> None:
    fusion: FactsFusion = engine.bundle.facts
    rng = np.random.default_rng(0)
    img = rng.dirichlet(np.ones(7), 20)
    k = img.shape[1]
    neutral = np.full((20, k), 1 / k)
    same = fusion.pooling_.combine([img, neutral])
    assert np.allclose(same, img, atol=1e-9)
    # facts that do say something move the distribution, and it still sums to 1
    fused, mask, _ = fusion.fuse(img, [{"age": 75, "sex": "male", "localization": "face"}] * 20)
    assert np.allclose(fused.sum(1), 1) and not np.allclose(fused, img, atol=1e-3)
    assert mask.shape == (20, k) and mask[np.arange(20), fused.argmax(1)].all()


def test_facts_are_checked_with_clear_errors(engine: Engine) -> None:
    ok = engine.check_facts({"age": "45", "sex": "Male", "localization": "back"})
    assert ok == {"age": 45.0, "sex": "male", "localization": "back"}
    assert engine.check_facts({"age": None, "sex": ""}) == {}  # missing facts are allowed
    with pytest.raises(ConfigError, match=r"unknown fact\(s\) weight; this model uses: age"):
        engine.check_facts({"weight": 70})
    with pytest.raises(ConfigError, match="outside the range"):
        engine.check_facts({"age": 300})
    with pytest.raises(ConfigError, match="must be a number"):
        engine.check_facts({"age": "old"})
    with pytest.raises(ConfigError, match="use one of: .*back"):
        engine.check_facts({"localization": "elbow"})
    assert parse_fact_pairs(["age=54 sex=male", "localization=back"]) == {"age": 54.0, "sex": "male",
                                                                          "localization": "back"}
    with pytest.raises(ConfigError, match="name=value"):
        parse_fact_pairs(["age"])


def test_conflicting_facts_raise_the_flag_and_widen_the_set(engine: Engine, test_cases: dict, ham: object) -> None:
    fusion: FactsFusion = engine.bundle.facts
    a = test_cases["a"]
    b = engine.bundle
    img = b.temperature.predict_proba(a["test_logits"])
    fused, mask, disagree = fusion.fuse(img, test_cases["facts"])
    image_mask = b.conformal.predict_set(img)
    widened = fusion.widen(mask, image_mask, disagree)
    assert disagree.any(), "no real test case where the facts overturn a confident image finding"
    assert (widened[disagree] >= image_mask[disagree]).all() and (widened[disagree] >= mask[disagree]).all()
    assert (img[disagree].max(1) >= 0.5).all() and (fused[disagree].argmax(1) != img[disagree].argmax(1)).all()
    # end to end on one real image: the engine raises symptom_conflict and does not say "likely"
    n = int(np.flatnonzero(disagree)[0])
    ex = test_cases["by_id"][str(a["test_ids"][n])]
    from carelens.data import read_image

    image = read_image(ex.path)
    alone = engine.assess([image])[0][0]
    with_facts = engine.assess([image], facts=[ex.facts])[0][0]
    assert alone.based_on == ["image"] and with_facts.based_on == ["image", "facts"]
    assert "symptom_conflict" in with_facts.flags and with_facts.confidence != "likely"
    assert set(alone.prediction_set) <= set(with_facts.prediction_set)
    assert with_facts.top[0].id != alone.top[0].id


def test_triage_cli_every_input_combination(ham_bundle: Path, symptom_bundle_dir: Path, data_dir: Path) -> None:
    ds = open_dataset(data_dir / "ham10000")
    ex = next(e for e in ds if e.label == "bkl" and e.facts.get("localization") == "face")
    img = str(ex.path)
    base = ["triage", "--symptom-model", str(symptom_bundle_dir), "--json"]

    def run(*args: str) -> dict:
        res = runner.invoke(app, [*base, *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)  # type: ignore[no-any-return]

    only_image = run("--model", str(ham_bundle), "--image", img)
    assert only_image["assessment"]["based_on"] == ["image"] and only_image["symptoms"] is None
    facts = run("--model", str(ham_bundle), "--image", img, "--facts", f"age={ex.facts['age']}", f"sex={ex.facts['sex']}",
                "--facts", "localization=face")  # `--facts a=1 b=2` as the issue writes it, and repeated --facts
    assert facts["assessment"]["based_on"] == ["image", "facts"]
    assert facts["assessment"]["top"] != only_image["assessment"]["top"]
    both = run("--model", str(ham_bundle), "--image", img, "--symptoms", "itchy skin rash, no fever")
    assert both["assessment"]["based_on"] == ["image", "symptoms"] and "skin_rash" in both["symptoms"]["present"]
    # with a lesion photo "itchy" answers the lesion's own question (the HAM10000 spec), not the general table's
    assert both["symptoms"]["image_questions"]["present"] == ["lesion_sensation"]
    # image clear, text says nothing useful: the image assessment stands, the text is reported as not understood
    useless = run("--model", str(ham_bundle), "--image", img, "--symptoms", "qwerty zxcvb")
    assert useless["assessment"] == only_image["assessment"] and useless["symptoms"]["used"] is False
    assert useless["symptoms"]["not_understood"]
    text = run("--symptoms", "sudden weakness on one side, slurred speech, no fever")
    assert text["assessment"]["based_on"] == ["symptoms"] and text["sources"]["image"] is None
    assert text["assessment"]["triage"]["level"] == "emergency_ambulance" and "high_fever" in text["symptoms"]["absent"]
    # the readable (Rich) form
    res = runner.invoke(app, ["triage", "--model", str(ham_bundle), "--image", img, "--facts", "age=60"])
    assert res.exit_code == 0 and "based on: image, facts" in res.output and "Not a diagnosis" in res.output
    # clear errors
    for args, message in [
        (["--model", str(ham_bundle), "--image", img, "--facts", "weight=7"], "unknown fact"),
        (["--model", str(ham_bundle), "--image", img, "stray"], "name=value"),
        (["--model", str(ham_bundle), "--image", img, "--facts", "age=-40"], "outside the range"),
        (["--facts", "age=50"], "give --image and --model"),
        (["--image", img], "go together"),
        (["--symptoms", "qwerty zxcvb"], "no symptom was recognised"),
    ]:
        res = runner.invoke(app, [*base, *args])
        assert res.exit_code == 1 and message in res.output, (args, res.output)
