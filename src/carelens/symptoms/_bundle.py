"""The symptom bundle: vocabulary, parser threshold, symptom model, calibration, decision rule and label spec in
one JSON file, plus the phrase embeddings (phrases.npz, made at build, its digest in the JSON as ``phrases``: a signed
bundle's signature covers them through it). Like the image bundle, it loads without torch.

Format 2 added ``decision`` (the critical-probability rule chosen on validation, as for every bundle kind): an older
carelens refuses it rather than decide by the laxer set rule; a format-1 bundle still loads, with the set rule.
Format 3 added ``integrity`` (the digest of everything else in symptoms.json, as image and signal bundles carry
theirs), kept current when a fusion is saved into the bundle; formats 1-2 load without it."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from carelens.calibrate import ConformalClassifier, TemperatureScaler
from carelens.errors import BundleError, ConfigError, DataError, NothingRecognisedError
from carelens.fusion import LinearModel
from carelens.hashing import file_digest, integrity_digest
from carelens.labels import LabelSpec
from carelens.metrics import coverage_report, nll
from carelens.policy import (
    Assessment,
    DecisionPolicy,
    ModelRef,
    choose_decision_rule,
    decide,
    level_agreement,
    rule_summary,
    triage_levels,
)
from carelens.signing import verify_signature
from carelens.symptoms._data import (
    SymptomTable,
    load_kaggle_table,
    partial_reports,
    split_patterns,
    unique_cases,
)
from carelens.symptoms._encoder import MiniLMEncoder
from carelens.symptoms._fusion import ImageSymptomFusion
from carelens.symptoms._parse import DEFAULT_THRESHOLD, ParsedSymptoms, SymptomParser
from carelens.symptoms._vocabulary import Vocabulary

__all__ = ["SymptomBundle", "build_symptom_bundle"]

FORMAT = 3  # 3 added ``integrity``, 2 ``decision``; 1 and 2 still load
PHRASES_FILE = "phrases.npz"  # the phrase embeddings' cache; its digest is sealed in symptoms.json (``phrases``)


def _top_k(proba: np.ndarray, y: np.ndarray, k: int) -> float:
    top = np.argsort(-proba, axis=1)[:, :k]
    return float((top == y[:, None]).any(1).mean())


def build_symptom_bundle(source: Path | SymptomTable, out: Path, *, seed: int = 0, alpha: float = 0.1,
                         synthetic: bool = False, real_cases: bool = False,
                         critical_miss_target: float = 0.02) -> dict[str, Any]:
    """Fit on unique-pattern train split with simulated partial reports; choose C, calibrate and choose the
    decision rule on val (:func:`carelens.policy.choose_decision_rule`: the set rule, or escalation at a critical
    probability, whichever keeps the critical-miss rate at ``critical_miss_target`` with the lowest over-triage);
    report on test with exactly 3 reported symptoms. Returns the test figures.

    Args:
        source: the Kaggle folder (``symptom_disease_kaggle41``), or any table (:func:`load_symptom_table`).
        synthetic: the table is synthetic (a plumbing check).
        real_cases: the table's rows are real patients' cases (a record of presentations, not a curated table
            of diseases and their typical symptoms). Only then may a symptom-only answer say ``likely``: a
            curated table such as Kaggle-41, where a few symptoms nearly determine the disease, makes the model
            far surer than real presentations warrant.
    """
    if synthetic and real_cases:
        raise ConfigError("a table cannot be both synthetic and real cases")
    t = load_kaggle_table(source) if isinstance(source, Path) else source
    tr, va, te = split_patterns(t.X, t.y, seed=seed)
    if len(np.unique(t.y[va])) < 2 or len(te) == 0:  # nothing to choose, calibrate or test on
        patterns = np.bincount(unique_cases(t.X, t.y)[1], minlength=len(t.spec.classes))
        few = ", ".join(f"{c} {n}" for c, n in zip(t.spec.class_ids, patterns, strict=True) if n < 3)
        raise DataError(f"the symptom table has too few distinct cases to validate and test a model on ({len(va)} "
                        f"validation and {len(te)} test rows): a condition needs at least 3 rows with different "
                        f"symptoms, one each for training, validation and test; these have fewer: {few}")
    # a table of cases repeats its patterns: each distinct case is simulated once, weighted by how often it occurs
    # (its prevalence); validation and test count each distinct case once, as held-out patterns
    utr, uytr, wtr = unique_cases(t.X[tr], t.y[tr])
    xtr, ytr = partial_reports(utr, uytr, (1, 6), 30, seed)
    xtr, ytr, wtr = np.r_[xtr, utr], np.r_[ytr, uytr], np.r_[np.repeat(wtr, 30), wtr].astype(float)
    uva, uyva, _ = unique_cases(t.X[va], t.y[va])
    ute, uyte, _ = unique_cases(t.X[te], t.y[te])
    xva, yva = partial_reports(uva, uyva, (2, 4), 20, seed + 1)
    xte, yte = partial_reports(ute, uyte, 3, 20, seed + 2)
    k = len(t.spec.classes)
    best: tuple[float, LinearModel] | None = None
    for c in (0.3, 1.0, 3.0, 10.0):
        m = LinearModel(C=c).fit(xtr, ytr, k, sample_weight=wtr)
        ll = nll(m.predict_proba(xva), yva)
        if best is None or ll < best[0]:
            best = (ll, m)
    assert best is not None
    model = best[1]
    ts = TemperatureScaler().fit(model.decision_function(xva), yva)
    cp = ConformalClassifier(alpha, "lac", class_conditional=False).fit(ts.predict_proba(model.decision_function(xva)), yva)
    pt = ts.predict_proba(model.decision_function(xte))
    cov = coverage_report(cp.predict_set(pt), yte, t.spec.class_ids)
    metrics = {"top1_accuracy_3_reported": float((pt.argmax(1) == yte).mean()),
               "top3_accuracy_3_reported": _top_k(pt, yte, 3), "coverage": cov["coverage"],
               "mean_set_size": cov["mean_set_size"], "val_log_loss": best[0], "C": model.C,
               "patterns": {"train": len(utr), "val": len(uva), "test": len(ute)},
               "rows": {"train": len(tr), "val": len(va), "test": len(te)}}
    decision: dict[str, Any] = {"critical_threshold": None}
    if t.spec.critical_indices:  # no OOD gate on a list of symptom ids: every case is in distribution
        pv = ts.predict_proba(model.decision_function(xva))
        rule = choose_decision_rule(pv, yva, np.ones(len(yva), bool), cp.cross_fitted_sets(pv, yva), t.spec,
                                    (pt, cp.predict_set(pt), np.ones(len(yte), bool), yte), target=critical_miss_target)
        shipped = next(r for r in rule["test"] if r["critical_threshold"] == rule["critical_threshold"])
        pairs = {"": shipped, "_set_rule": rule["test"][0]}  # the set rule is the first candidate
        metrics |= {f"{k}{suffix}": None if np.isnan(r[k]) else r[k] for suffix, r in pairs.items()
                    for k in ("critical_miss_rate", "over_triage_rate")}  # None: no class to over-triage
        metrics["decision_rule"] = rule_summary(rule)
        decision["critical_threshold"] = rule["critical_threshold"]
    levels = triage_levels(pt, cp.predict_set(pt), np.ones(len(yte), bool), t.spec,
                           policy=DecisionPolicy(critical_threshold=decision["critical_threshold"]))
    metrics["triage_agreement"] = level_agreement(levels, yte, t.spec)  # each test case as shipped, against its own
    doc = {
        "format": FORMAT, "name": t.spec.name, "synthetic": synthetic,
        "data": "synthetic" if synthetic else "real_cases" if real_cases else "curated_table",
        "version": dt.datetime.now(dt.UTC).strftime("%Y.%m.%d-%H%M%S"),
        "label_spec": t.spec.to_dict(), "vocabulary": t.vocab.to_dict(), "threshold": DEFAULT_THRESHOLD,
        "model": model.to_dict(), "temperature": ts.temperature_, "conformal": cp.to_dict(), "decision": decision,
        "metrics": metrics,
        "prior": ((np.bincount(ytr, wtr, minlength=k) + 1.0) / (wtr.sum() + k)).tolist(),  # what the model was fitted on
    }
    out.mkdir(parents=True, exist_ok=True)
    # the phrase embeddings, made once here and sealed with symptoms.json by their digest: a signed load may read them
    cache = out / PHRASES_FILE
    cache.unlink(missing_ok=True)
    try:
        SymptomParser(t.vocab, _CachedEncoder(MiniLMEncoder(), cache), DEFAULT_THRESHOLD).phrase_embeddings()
    except ConfigError:  # no sentence encoder here: the bundle's first load embeds them, unsealed
        pass
    if cache.is_file():
        doc["phrases"] = {"file": PHRASES_FILE, "sha256": file_digest(cache)}
    _write_sealed(out / "symptoms.json", doc)
    return metrics


def _write_sealed(f: Path, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``doc`` to ``f`` whole (beside it, then moved into place) with its integrity digest; return what was
    written."""
    plain = json.loads(json.dumps(doc))  # as it reads back
    sealed = {**plain, "integrity": integrity_digest(plain)}
    tmp = f.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(sealed))
    tmp.replace(f)
    return sealed


@dataclass
class SymptomBundle:
    path: Path
    doc: dict[str, Any]
    spec: LabelSpec
    vocab: Vocabulary
    model: LinearModel
    temperature: TemperatureScaler
    conformal: ConformalClassifier
    parser: SymptomParser
    signed_by: str | None = None  # the trusted key that signed symptoms.json, when loaded with trusted keys

    @classmethod
    def load(cls, path: str | Path, *, encoder: Any = "default",
             trusted_keys: dict[str, Ed25519PublicKey] | None = None) -> SymptomBundle:
        """``trusted_keys``: when given, symptoms.json must be signed by one of them (as for every bundle kind).
        The vocabulary's phrase embeddings are kept in ``phrases.npz`` beside the bundle. With ``trusted_keys`` they
        are read only when the file's digest is the one sealed in symptoms.json at build (the signature covers
        symptoms.json): embeddings read from a file nobody signed could change what the text is understood to say.
        Otherwise (a bundle built before the digest was kept, or a file changed since) they are embedded afresh, ~5
        s."""
        p = Path(path)
        f = p / "symptoms.json" if p.is_dir() else p
        if not f.is_file():
            raise BundleError(f"{f} not found; build one with `carelens symptoms build`")
        signed_by = verify_signature(f.parent, trusted_keys) if trusted_keys is not None else None
        doc = json.loads(f.read_text())
        if doc.get("format") not in range(1, FORMAT + 1):
            raise BundleError(f"{f} has format {doc.get('format')!r}; this carelens reads 1 to {FORMAT} (a newer "
                              "carelens wrote it: upgrade carelens)")
        if (doc["format"] >= 3 or "integrity" in doc) and doc.get("integrity") != integrity_digest(doc):
            raise BundleError(f"{f} was modified after it was built (integrity check failed); build it again with "
                              "`carelens symptoms build`")
        vocab = Vocabulary.from_dict(doc["vocabulary"])
        if encoder == "default":
            cache = f.parent / PHRASES_FILE
            sealed = (doc.get("phrases") or {}).get("sha256")  # covered by the signature through symptoms.json
            if trusted_keys is None:
                encoder = _CachedEncoder(MiniLMEncoder(), cache)
            elif sealed:
                encoder = _CachedEncoder(MiniLMEncoder(), cache, sealed)
            else:  # a signed bundle built before the digest was kept: nothing to check the file against
                encoder = MiniLMEncoder()
        ts = TemperatureScaler.from_dict(doc)
        return cls(f.parent, doc, LabelSpec.model_validate(doc["label_spec"]), vocab,
                   LinearModel.from_dict(doc["model"]), ts, ConformalClassifier.from_dict(doc["conformal"]),
                   SymptomParser(vocab, encoder, float(doc["threshold"])), signed_by)

    @property
    def prior(self) -> np.ndarray:
        """The class frequencies the model was fitted on (uniform for a bundle built before they were kept)."""
        k = len(self.spec.classes)
        return np.asarray(self.doc.get("prior") or np.full(k, 1.0 / k), np.float64)

    def fusion_for(self, model: ModelRef) -> ImageSymptomFusion | None:
        """The fusion fitted with this image model (same name and version), if any."""
        d = (self.doc.get("image_fusion") or {}).get(model.name)
        if d is None or d["image_model"]["version"] != model.version:
            return None
        return ImageSymptomFusion.from_dict(d)

    def save_fusion(self, fusion: ImageSymptomFusion, figures: Mapping[str, Any]) -> None:
        """Keep a fitted fusion (and its test figures) in symptoms.json, replacing one for the same image model."""
        fusions = dict(self.doc.get("image_fusion") or {})
        fusions[fusion.image_model.name] = {**fusion.to_dict(), "figures": dict(figures)}
        self.doc = _write_sealed(self.path / "symptoms.json", {**self.doc, "image_fusion": fusions})

    def vector(self, symptom_ids: list[str]) -> np.ndarray:
        unknown = [s for s in symptom_ids if s not in self.vocab]
        if unknown:
            raise DataError(f"unknown symptom id(s) {unknown}; see the vocabulary (GET /v1/symptoms)")
        x = np.zeros(len(self.vocab.ids))
        for s in symptom_ids:
            x[self.vocab.ids.index(s)] = 1.0
        return x

    def proba(self, symptom_ids: list[str]) -> np.ndarray:
        return np.asarray(self.temperature.predict_proba(self.model.decision_function(self.vector(symptom_ids)[None]))[0])

    def assess(self, text: str, policy: DecisionPolicy | None = None) -> tuple[Assessment, ParsedSymptoms]:
        """Assessment of free text; a text with no recognised symptom is a NothingRecognisedError naming what
        was unclear."""
        parsed = self.parser.parse(text)
        if not parsed.present:
            raise NothingRecognisedError(nothing_recognised(parsed))
        return self.assess_parsed(parsed, policy), parsed

    def policy(self) -> DecisionPolicy:
        """The decision rule the bundle ships (the set rule for a format-1 bundle)."""
        return DecisionPolicy(critical_threshold=(self.doc.get("decision") or {}).get("critical_threshold"))

    def assess_parsed(self, parsed: ParsedSymptoms, policy: DecisionPolicy | None = None) -> Assessment:
        """``policy``: the bundle's own (:meth:`policy`) unless given."""
        p = self.proba(parsed.present)
        mask = self.conformal.predict_set(p[None])[0]
        a = decide(p, mask, spec=self.spec, model=ModelRef(name=self.doc["name"], version=self.doc["version"]),
                   coverage=1 - float(self.conformal.alpha), policy=policy or self.policy(), based_on=("symptoms",))
        if a.confidence == "likely" and self.data != "real_cases":
            why = ("a synthetic table" if self.data == "synthetic" else
                   "a curated table of diseases and their typical symptoms, not on real cases")
            return a.model_copy(update={"confidence": "possible", "triage": a.triage.model_copy(update={
                "reason": f"{a.triage.reason}; said as 'possible', not 'likely': the symptom model was fitted on "
                          f"{why}, so its certainty is not validated"})})
        return a

    @property
    def data(self) -> str:
        """What the model was fitted on: real_cases, curated_table or synthetic (bundles from before this was
        recorded: curated_table, or synthetic where they said so)."""
        return str(self.doc.get("data") or ("synthetic" if self.doc.get("synthetic") else "curated_table"))


def nothing_recognised(parsed: ParsedSymptoms) -> str:
    return ("no symptom was recognised in the text"
            + (f" (not understood: {'; '.join(parsed.unmapped)})" if parsed.unmapped else "")
            + ". Describe what you see in plain words, e.g. 'itching, vomiting, no fever'.")


class _CachedEncoder:
    """Phrase embeddings are cached next to the bundle (keyed by the phrase list). ``sealed``: the sha256 the file must
    have (a signed bundle's, from symptoms.json); it is then read once, checked as read, and never rewritten (a changed
    or stale one is recomputed)."""

    def __init__(self, inner: Any, cache: Path, sealed: str | None = None) -> None:
        self.inner, self.cache, self.sealed = inner, cache, sealed

    def words(self) -> frozenset[str]:
        return self.inner.words()  # type: ignore[no-any-return]

    def encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) < 50:
            return self.inner.encode(texts)  # type: ignore[no-any-return]
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()
        data = self.cache.read_bytes() if self.cache.is_file() else None
        if data is not None and (self.sealed is None or hashlib.sha256(data).hexdigest() == self.sealed):
            with np.load(io.BytesIO(data)) as z:
                if str(z["key"]) == key:
                    return z["emb"]  # type: ignore[no-any-return]
        emb = np.concatenate([self.inner.encode(texts[i : i + 64]) for i in range(0, len(texts), 64)])
        if self.sealed is None:
            try:
                np.savez(self.cache, key=key, emb=emb)
            except OSError:
                pass  # read-only bundle folder: recompute next time
        return emb
