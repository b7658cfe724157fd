from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from phrases import PHRASES

from carelens.errors import BundleError, ConfigError, DataError
from carelens.fusion import LogLinearPooling, TabularModel
from carelens.signing import generate_keys, load_trusted_keys, sign_bundle
from carelens.symptoms import (
    DEFAULT_THRESHOLD,
    MiniLMEncoder,
    SymptomBundle,
    SymptomParser,
    build_symptom_bundle,
    clean_symptom_name,
    load_kaggle_table,
    load_kaggle_vocabulary,
)


@pytest.fixture(scope="module")
def kaggle(data_dir: Path) -> Path:
    return data_dir / "symptom_disease_kaggle41"


@pytest.fixture(scope="module")
def encoder():  # type: ignore[no-untyped-def]
    from carelens.symptoms import MiniLMEncoder

    return MiniLMEncoder()


def test_vocabulary_cleans_the_known_defects(kaggle: Path) -> None:
    v = load_kaggle_vocabulary(kaggle)
    assert len(v.ids) == 131  # 132 columns, fluid_overload twice
    assert "spotting_urination" in v and "dischromic_patches" in v and "foul_smell_of_urine" in v
    assert v.ids.count("fluid_overload") == 1
    assert clean_symptom_name("toxic_look_typhos") == "toxic_look_(typhos)"
    assert v.get("cough").group == "respiratory" and v.get("itching").group == "skin"
    assert 1 <= v.get("chest_pain").weight <= 7


def test_duplicates_are_removed_and_every_condition_kept(kaggle: Path) -> None:
    t = load_kaggle_table(kaggle)
    assert len(t.X) == 304 and len(set(t.y.tolist())) == 41
    assert t.X[:, t.vocab.ids.index("fluid_overload")].sum() > 0  # the second, non-empty copy was kept


@pytest.mark.parametrize(
    ("text", "present", "absent"),
    [
        ("he keeps scratching and vomits, no fever", {"itching", "vomiting"}, {"high_fever"}),
        ("not eating, denies cough", {"loss_of_appetite"}, {"cough"}),
        ("no fever or cough", set(), {"high_fever", "cough"}),
        ("won't eat and is throwing up", {"loss_of_appetite", "vomiting"}, set()),
        ("headache but no nausea", {"headache"}, {"nausea"}),
    ],
)
def test_phrases_and_negation(kaggle: Path, text: str, present: set[str], absent: set[str]) -> None:
    parsed = SymptomParser(load_kaggle_vocabulary(kaggle)).parse(text)
    assert set(parsed.present) == present and set(parsed.absent) == absent


def test_embedding_threshold_is_chosen_on_the_labelled_phrases(kaggle: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    vocab = load_kaggle_vocabulary(kaggle)

    class Once:  # each text encoded once: the grid below parses the same phrases at 8 thresholds
        def __init__(self) -> None:
            self.seen: dict[str, np.ndarray] = {}

        def words(self) -> frozenset[str]:
            return encoder.words()  # type: ignore[no-any-return]

        def encode(self, texts: list[str]) -> np.ndarray:
            todo = [t for t in dict.fromkeys(texts) if t not in self.seen]
            if todo:
                self.seen.update(zip(todo, encoder.encode(todo), strict=True))
            return np.stack([self.seen[t] for t in texts])

    p = SymptomParser(vocab, Once())  # phrase embeddings computed once, threshold varied below

    def accuracy(th: float) -> float:
        p.threshold = th
        ok = 0
        for text, want in PHRASES:
            got = p.parse(text)
            ok += (got.present[:1] == [want]) if want else (not got.present and bool(got.unmapped))
        return ok / len(PHRASES)

    grid = {th: accuracy(th) for th in (0.45, 0.5, 0.55, 0.6, DEFAULT_THRESHOLD, 0.65, 0.7, 0.75)}
    assert grid[DEFAULT_THRESHOLD] >= max(grid.values()) - 0.04  # the default is (near) the best
    assert grid[DEFAULT_THRESHOLD] >= 0.75
    p.threshold = DEFAULT_THRESHOLD
    unmapped = p.parse("the weather is lovely today")
    assert unmapped.present == [] and unmapped.unmapped == ["the weather is lovely today"]


def test_symptom_bundle_partial_reports_and_assessment(kaggle: Path, tmp_path: Path) -> None:
    m = build_symptom_bundle(kaggle, tmp_path / "sym")
    assert m["top3_accuracy_3_reported"] >= 0.95
    b = SymptomBundle.load(tmp_path / "sym", encoder=None)
    a, _ = b.assess("crushing chest pain, sweating, short of breath")
    assert a.top[0].id == "heart_attack" and a.triage.level == "emergency_ambulance"
    assert abs(sum(t.probability for t in a.top) - 1) < 0.05
    with pytest.raises(DataError, match="no symptom was recognised"):
        b.assess("the weather is lovely")
    with pytest.raises(DataError, match="unknown symptom"):
        b.vector(["levitation"])
    # the decision rule, chosen on validation as for every bundle kind, ships and decides; its cost is reported beside
    # its safety on test (measured: critical-miss 0.016 at over-triage 0.016; the set rule alone 0.014 / 0.025)
    rule, threshold = m["decision_rule"], b.doc["decision"]["critical_threshold"]
    assert rule["critical_threshold"] == threshold == b.policy().critical_threshold
    assert all(0 <= m[k] <= 1 for k in ("critical_miss_rate", "over_triage_rate", "critical_miss_rate_set_rule",
                                        "over_triage_rate_set_rule"))
    # and each test case's level as shipped against its own (a heart attack given less than an ambulance counts as a
    # critical miss: below its own level)
    t = m["triage_agreement"]
    counts = np.asarray(t["counts"])
    assert counts.sum() == m["patterns"]["test"] * 20 and t["below_own_level_rate"] <= 1
    assert t["below_own_level_rate"] + t["same_level_rate"] + t["above_own_level_rate"] == pytest.approx(1)
    itch, _ = b.assess("itching and a skin rash")
    if threshold is not None:  # the critical-probability rule says which side of its threshold the answer fell
        assert "that escalates" in itch.triage.reason or "chosen to keep missed serious cases rare" in itch.triage.reason
    # a format-1 bundle (before the rule) decides by the set rule; a newer format is refused, saying why
    doc = json.loads((tmp_path / "sym" / "symptoms.json").read_text())
    for version, name in ((1, "old"), (99, "new")):
        (tmp_path / name).mkdir()
        old = {k: v for k, v in doc.items() if k not in ("decision", "integrity")} | {"format": version}
        (tmp_path / name / "symptoms.json").write_text(json.dumps(old))
    assert SymptomBundle.load(tmp_path / "old", encoder=None).policy().critical_threshold is None
    assert "that escalates" not in SymptomBundle.load(tmp_path / "old", encoder=None).assess("itching and a skin rash")[0].triage.reason
    with pytest.raises(BundleError, match="upgrade carelens"):
        SymptomBundle.load(tmp_path / "new", encoder=None)
    # symptoms.json carries its own digest: a parser threshold (or anything else) changed by hand is refused
    (tmp_path / "edited").mkdir()
    (tmp_path / "edited" / "symptoms.json").write_text(json.dumps(doc | {"threshold": doc["threshold"] - 0.2}))
    with pytest.raises(BundleError, match="modified after it was built"):
        SymptomBundle.load(tmp_path / "edited", encoder=None)


def test_tabular_model_keeps_missing_values_explicit() -> None:
    rows = [{"age": 60, "sex": "m"}, {"age": None, "sex": "f"}, {"age": 30, "sex": None}, {"age": 45, "sex": "f"}] * 10
    y = np.array([1, 0, 0, 1] * 10)
    m = TabularModel(["age"], ["sex"]).fit(rows, y)
    X = m.encoder_.transform([{"age": None, "sex": "x"}])
    names = m.encoder_.names
    assert X[0, names.index("age_missing")] == 1 and X[0, names.index("sex=missing")] == 1
    again = TabularModel.from_dict(m.to_dict())
    assert np.allclose(again.predict_proba(rows), m.predict_proba(rows))
    with pytest.raises(ConfigError, match="must be a number"):
        m.predict_proba([{"age": "old", "sex": "m"}])


def test_log_linear_pooling_learns_to_trust_the_informative_source() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    good = np.full((600, 3), 0.1)
    good[np.arange(600), y] = 0.8
    noise = rng.dirichlet([1, 1, 1], 600)
    pool = LogLinearPooling().fit([good, noise], y)
    assert pool.weights_[0] > 3 * pool.weights_[1]
    fused = pool.combine([good, noise])
    assert np.allclose(fused.sum(1), 1) and (fused.argmax(1) == y).mean() > 0.95
    with pytest.raises(ConfigError, match="same classes"):
        pool.combine([good, noise[:, :2]])
    # an anchored (already calibrated) source keeps weight 1; the uninformative one is turned down
    anchored = LogLinearPooling(anchor=1).fit([noise, good], y)
    assert anchored.weights_[1] == 1.0 and anchored.weights_[0] < 0.3


def test_combined_triage_takes_the_more_urgent_source(kaggle: Path, tmp_path: Path) -> None:
    from carelens.labels import load_spec
    from carelens.policy import ModelRef, decide
    from carelens.symptoms import triage

    build_symptom_bundle(kaggle, tmp_path / "sym")
    sym = SymptomBundle.load(tmp_path / "sym", encoder=None)
    ham = load_spec("ham10000")
    p = np.full(7, 0.01)
    p[ham.index("nv")] = 0.94
    mask = np.zeros(7, bool)
    mask[ham.index("nv")] = True
    image = decide(p, mask, spec=ham, model=ModelRef(name="derma", version="t"), coverage=0.9)
    assert image.triage.level == "self_care"
    out = triage(image=image, text="chest pain and short of breath", symptoms=sym)
    a = out["assessment"]
    assert a["top"][0]["id"] == "nv"  # the image finding stays the finding
    assert a["triage"]["level"] == "emergency_ambulance"  # but the symptoms decide the urgency
    assert "multi_system" in a["flags"]


def test_a_signed_load_reads_only_the_phrase_cache_sealed_at_build(symptom_bundle_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """phrases.npz sits beside a signed symptoms.json, which carries its digest from the build: embeddings swapped in
    it change what a text is understood to say, so a service that accepts only signed bundles reads it only as
    sealed, and embeds the phrases afresh otherwise."""
    import shutil

    folder = shutil.copytree(symptom_bundle_dir, tmp_path / "sym")
    sealed = (folder / "phrases.npz").read_bytes()  # made by the build
    assert json.loads((folder / "symptoms.json").read_text())["phrases"]["sha256"] == hashlib.sha256(sealed).hexdigest()
    text = "I keep throwing up my food"  # 'my food' is matched by embedding, not by a phrase
    clean = SymptomBundle.load(folder).parser.parse(text).matches
    with np.load(folder / "phrases.npz") as z:
        key, emb = str(z["key"]), z["emb"]
    np.savez(folder / "phrases.npz", key=key, emb=np.roll(emb, 7, axis=0))  # the same key, other phrases' vectors
    assert SymptomBundle.load(folder).parser.parse(text).matches != clean  # read: the answer moves
    keys = load_trusted_keys(generate_keys(tmp_path / "keys")[1].parent)
    with pytest.raises(BundleError, match="not signed"):
        SymptomBundle.load(folder, trusted_keys=keys)
    sign_bundle(folder, tmp_path / "keys" / "private.pem")
    signed = SymptomBundle.load(folder, trusted_keys=keys)  # checked, and the changed cache left unread
    assert signed.signed_by == next(iter(keys)) and signed.parser.parse(text).matches == clean
    assert (folder / "phrases.npz").read_bytes() != sealed  # left as it was found, not rewritten
    (folder / "phrases.npz").write_bytes(sealed)
    asked: list[int] = []
    encode = MiniLMEncoder.encode
    monkeypatch.setattr(MiniLMEncoder, "encode", lambda self, texts: (asked.append(len(texts)), encode(self, texts))[1])
    signed = SymptomBundle.load(folder, trusted_keys=keys)
    assert signed.parser.parse(text).matches == clean and max(asked) < 50  # the sealed cache: no phrase list embedded
    assert SymptomBundle.load(folder).signed_by is None
