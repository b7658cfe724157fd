"""`carelens export RUN --out BUNDLE`: ONNX + bundle.json + calibration, verified with numbers.

The training side of the bundle (imports torch): reading a run's best checkpoint back into a model,
exporting it to ONNX, and checking ONNX Runtime against PyTorch on real validation images."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from carelens import __version__
from carelens.bundle import (
    HEAD_FILE,
    BundleSpec,
    ConformalParams,
    DecisionParams,
    FactsSection,
    ModelIO,
    MultilabelParams,
    OODParams,
    SelfTest,
    SplitInfo,
    bundle_folder,
    bundle_identity,
    int8_instructions,
    load_bundle,
    make_session,
    selftest_input,
)
from carelens.calibrate import ScalerChoice
from carelens.config import MIRRORING_PRESETS
from carelens.errors import BundleError, ConfigError, DataError
from carelens.hashing import file_digest
from carelens.labels import spec_from_labels
from carelens.metrics import balanced_accuracy, classification_metrics
from carelens.models import GRAPH_OUTPUTS, OPSET, Classifier, ShippedGraph, build_classifier, export_onnx
from carelens.preprocess import preprocess_batch
from carelens.steps.calibrate import calibrate_run
from carelens.steps.quantize import (
    CALIBRATION_IMAGES,
    INT8_SELFTEST_ATOL,
    Quantized,
    calibration_indices,
    derived_run,
    quantize_onnx,
    session_predictions,
    split_batches,
)
from carelens.steps.run import Calibration, Run
from carelens.tasks import OutputLayout

__all__ = ["export_run", "load_run_model"]

INTENDED_USE = ("Decision support for triage: estimates which conditions are plausible and how urgently to seek "
                "care. Not a diagnosis; not validated for clinical use.")


def _versions() -> dict[str, str]:
    out = {"carelens": __version__}
    for pkg in ("torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def load_run_model(run: str | Path | Run) -> Classifier:
    """The best checkpoint of ``run`` in eval mode (its preprocessing is ``Run(run).config.preprocess``)."""
    r = run if isinstance(run, Run) else Run(run)
    r.require(Run.CONFIG, Run.BEST, step="train")
    t, spec = r.config.train, r.config.spec
    layout = OutputLayout.of(spec, t.severity_head) if spec is not None and spec.multilabel else None
    model = build_classifier(t.model, len(r.config.class_ids), t.image_size, pretrained=False, dropout=t.dropout,
                             layout=layout, width=t.width)
    model.load_state_dict(torch.load(r.best_checkpoint, map_location="cpu", weights_only=True)["model"])
    return model.eval()


def _parity_images(run: Run, n: int = 16) -> list[np.ndarray]:
    """A fixed batch of real validation images of the run (the first n by id)."""
    try:
        ds, splits = run.data()
    except (DataError, TypeError) as exc:
        raise BundleError(f"the run's data ({run.config.dataset.source}) is needed to verify the export: {exc}") from None
    idx = sorted(splits.indices(ds, "val"), key=lambda i: ds[i].id)[:n]
    return [img for _, img in ds.iter_images(idx)]


def _split_info(run: Run) -> SplitInfo:
    doc, splits = run.split_document, run.splits()
    return SplitInfo(strategy=splits.strategy, seed=splits.seed, fractions=list(splits.fractions),
                     data_fingerprint=splits.fingerprint, assignment_sha256=splits.assignment_digest(),
                     counts=doc.get("counts"))


def _scaler_choice(record: dict[str, Any]) -> ScalerChoice:
    """The ``among`` a calibration's scaler record names; a record from before it (``cv_nll``: ``--scaler auto``,
    which then compared the temperature with class biases; else the temperature alone)."""
    among = record.get("among")
    if among in ("temperature", "prior_free", "auto"):
        return cast(ScalerChoice, among)
    return "auto" if "cv_nll" in record else "temperature"


def _refit(r: Run, out: Path, cal: Calibration, int8: bool, views: int, members: int, calibration_images: int
           ) -> tuple[Run, Calibration, dict[str, Any]]:
    """The graph in out/model.onnx computes other outputs than the run's predictions came from (quantised to int8
    here with ``int8``; averaging ``views`` views of each image (1: the image alone); averaging ``members``
    models): recompute the run's outputs with it and refit the calibration on them, with the settings the run's
    calibration used. Returns the derived run, its calibration and the agreement of the shipped graph with the
    trained model (the first member) on the validation split."""
    if cal.multilabel is not None:
        raise ConfigError("int8, flips and ensemble exports support multi-class models for now; export this "
                          "multi-label run without them")
    ds, splits = r.data()
    chosen: list[int] = []
    quantized = Quantized([], 0)
    if int8:
        chosen = calibration_indices(splits.indices(ds, "train"), calibration_images)
        fp32 = out / "model.fp32.onnx"
        (out / "model.onnx").rename(fp32)
        quantized = quantize_onnx(fp32, out / "model.onnx", list(split_batches(ds, chosen, r.config.preprocess, batch=16)))
        fp32.unlink()
    ref = r.predictions()
    # flips alone: the gate keeps the trained model's own training features as its model of the training data (the
    # shipped graph's would cost 3 views of every training image: 72 s on top of 46 s for a 160 px HAM10000 export);
    # its scores are standardised and thresholded on the shipped graph's validation outputs (an ensemble's features
    # are its first member's, this run's). `python bench/ood_flips.py`
    # (2 seeds, against the gate fitted on the shipped graph's training features): far AUROC 0.9996 / 0.9997, near
    # 0.9976 / 0.9983, test pass rate 0.967 / 0.971. int8: every output changes, the training split is rerun
    preds = session_predictions(r, make_session(out / "model.onnx"), ds, splits, ref, keep_train=not int8)
    tmp = Path(tempfile.mkdtemp(prefix="carelens-refit-run-"))
    derived = derived_run(r, tmp, preds)
    rep = cal.report
    conf, ood = rep["conformal"], rep["ood"]
    target = (rep.get("decision_rule") or {}).get("target_critical_miss_rate", 0.02)
    refit = calibrate_run(derived, alpha=conf["alpha"], score=conf["score"], class_conditional=conf["class_conditional"],
                          pool_noncritical=bool(conf.get("pooled")), ood_method=ood["method"], pass_rate=ood["pass_rate"],
                          pass_confidence=ood.get("confidence"), facts=None if "facts" in rep else [],
                          critical_miss_target=target,
                          scaler=_scaler_choice(rep.get("scaler") or {}))  # the scalers the run's calibration let compete
    assert cal.temperature is not None and refit.temperature is not None
    p_run, p_shipped = cal.temperature.predict_proba(ref.val_logits), refit.temperature.predict_proba(preds.val_logits)
    y, k = ref.val_y, len(r.config.class_ids)
    agreement: dict[str, Any] = {
        "int8": int8, "flips": views > 1, "views": views, "members": members, "images": len(y),
        "calibration_images": len(chosen),
        "float_nodes": quantized.float_nodes, "bias_corrected_layers": quantized.bias_corrected,
        "ood_training_features": "shipped graph" if int8 else "trained model",
        "top1_agreement": float((p_run.argmax(1) == p_shipped.argmax(1)).mean()),
        "max_probability_diff": float(np.abs(p_run - p_shipped).max()),
        "val_balanced_accuracy_trained": balanced_accuracy(y, p_run.argmax(1), k),
        "val_balanced_accuracy_shipped": balanced_accuracy(y, p_shipped.argmax(1), k),
    }
    if (preds.test_logits is not None and preds.test_y is not None and ref.test_logits is not None
            and ref.test_y is not None):
        agreement["test_balanced_accuracy_trained"] = balanced_accuracy(ref.test_y, ref.test_logits.argmax(1), k)
        agreement["test_balanced_accuracy_shipped"] = balanced_accuracy(preds.test_y, preds.test_logits.argmax(1), k)
    return derived, refit, agreement


def _test_as_called(r: Run, cal: Calibration) -> dict[str, Any] | None:
    """The test split's classification figures as the bundle calls each image (calibrated probabilities, finding
    weights); None without a test split."""
    p = r.predictions()
    if p.test_logits is None or p.test_y is None or cal.temperature is None:
        return None
    return classification_metrics(p.test_y, cal.temperature.predict_proba(p.test_logits), r.config.class_ids,
                                  cal.finding_weights)


def _members(r: Run, ensemble: Sequence[str | Path | Run]) -> list[Run]:
    """The runs averaged with ``r`` in an ensemble export, checked to be interchangeable with it: the same classes,
    preprocessing, data and split (so that the refitted calibration reads outputs on images no member trained on)."""
    runs = [m if isinstance(m, Run) else Run(m) for m in ensemble]
    cfg, digest = r.config, r.splits().assignment_digest()
    seen = {r.path.resolve()}
    for m in runs:
        m.require(Run.CONFIG, Run.SPLITS, Run.BEST, step="train")
        if m.path.resolve() in seen:
            raise ConfigError(f"--ensemble: run {m.path} is in the ensemble twice; give each member run once")
        seen.add(m.path.resolve())
        mc = m.config
        differs = [what for what, same in (
            ("model", mc.train.model == cfg.train.model), ("classes", mc.class_ids == cfg.class_ids),
            ("preprocessing", mc.preprocess == cfg.preprocess),
            ("dataset", mc.dataset.fingerprint == cfg.dataset.fingerprint),
            ("split", m.splits().assignment_digest() == digest),
            ("task", (mc.spec is not None and mc.spec.multilabel) == (cfg.spec is not None and cfg.spec.multilabel)),
        ) if not same]
        if differs:
            raise ConfigError(f"--ensemble: run {m.path} differs from {r.path} in its {', '.join(differs)}; an "
                              "ensemble's members are the same recipe trained with other seeds on the same data and "
                              "split (`carelens split ... --out splits.json`, then `carelens train --splits "
                              "splits.json --seed N` for each member)")
    return runs


def export_run(run: str | Path | Run, out: str | Path, *, name: str | None = None, version: str | None = None,
               parity_images: list[np.ndarray] | None = None, atol: float = 1e-4, int8: bool = False,
               flips: bool = False, quarter_turns: bool = False, ensemble: Sequence[str | Path | Run] = (),
               calibration_images: int = CALIBRATION_IMAGES) -> Path:
    """Export the best model of a calibrated run to a verified bundle directory.

    ``int8``: ship the statically quantised model (:mod:`carelens.steps.quantize`). ``flips``: ship a graph that
    averages each image's logits and features over the image and its two mirror images (3x the model's work per
    image); with ``quarter_turns`` too, over the 8 symmetries of the square (8x; for models trained with quarter
    turns, as every mirroring augment preset does; measured on HAM10000, `python bench/views.py`). ``ensemble``:
    other runs of the same recipe (other seeds, the same data and split) whose models the graph averages with this
    run's (a deep ensemble: the logits are the mean over the models, the OOD gate reads this run's features; each
    member adds its model's work per image). With any of them, the calibration is
    refitted on the shipped graph's own outputs (without int8, on its validation and test outputs, the OOD gate's
    training features staying this run's trained model's), and the parity record adds the shipped graph's agreement
    with this run's trained model on validation.

    Raises:
        BundleError: ONNX Runtime and PyTorch disagree beyond ``atol`` or on any decision.
    """
    r = run if isinstance(run, Run) else Run(run)
    out = Path(out)
    cfg = r.config
    members = _members(r, ensemble)
    unmirrored = sorted({m.config.train.augment for m in [r, *members]} - set(MIRRORING_PRESETS))
    if quarter_turns and not flips:
        raise ConfigError("--quarter-turns averages the quarter turns together with the mirror images: add --flips")
    if flips and unmirrored:
        raise ConfigError(f"--flips: this run trained with augment {unmirrored[0]!r}, which never mirrors both ways,"
                          " so a mirror image is not something the model has learned to read (in x-rays and "
                          f"ultrasound, left and right matter). Export without --flips, or train with one of "
                          f"{', '.join(MIRRORING_PRESETS)}.")
    final = out
    with bundle_folder(final) as out:  # built beside it; the old bundle is replaced only once this one loads
        cal = r.calibration()
        models = [load_run_model(m) for m in [r, *members]]
        seeds = [m.config.train.seed for m in [r, *members]]
        pre = cfg.preprocess
        images = parity_images if parity_images is not None else _parity_images(r)
        s = pre.image_size
        dummy = torch.zeros(2, 3, s, s)
        graph = ShippedGraph(models, flips, quarter_turns).eval()  # exported, and what ONNX Runtime is checked against
        export_onnx(graph, (dummy,), out / "model.onnx", ["input"], GRAPH_OUTPUTS)
        weight, bias = graph.head()
        np.savez(out / HEAD_FILE, weight=weight.numpy(), bias=bias.numpy())
        shutil.copy(r.ood_path, out / "ood.npz")

        # parity: PyTorch and ONNX Runtime on real validation images
        batch = preprocess_batch(images, pre)
        with torch.inference_mode():
            t_logits, t_feats, t_fmap = (a.numpy() for a in graph(torch.from_numpy(batch)))
        sess = make_session(out / "model.onnx")
        o_logits, _, _ = sess.run(GRAPH_OUTPUTS, {"input": batch})
        diff = float(np.abs(o_logits - t_logits).max())
        if cal.multilabel is not None:  # every condition's decision (present at its threshold) must agree, except
            k = len(cfg.class_ids)      # where a probability sits on the threshold itself (a validation image's)
            po, pt = (cal.multilabel.predict_proba(x[:, :k]) for x in (o_logits, t_logits))
            on_edge = np.abs(pt - cal.multilabel.thresholds_) < 1e-4
            same = bool(((cal.multilabel.present(po) == cal.multilabel.present(pt)) | on_edge).all())
        else:
            same = bool((o_logits.argmax(1) == t_logits.argmax(1)).all())
        if diff > atol or not same:
            raise BundleError(f"export check failed: ONNX Runtime and PyTorch logits differ by {diff:.2e} "
                              f"(allowed {atol:.0e}); identical decisions: {same}")
        parity: dict[str, Any] = {"images": len(images), "max_abs_logit_diff": diff, "identical_decisions": same, "atol": atol}
        selftest_atol = SelfTest.model_fields["atol"].default
        scratch: Path | None = None
        if int8 or flips or members:
            r, cal, agreement = _refit(r, out, cal, int8, graph.n_views, len(models), calibration_images)
            scratch = r.path  # the derived run: removed once the bundle is written
            shutil.copy(r.ood_path, out / "ood.npz")
            sess = make_session(out / "model.onnx")
            parity = {"fp32_vs_torch": parity, **agreement}
            if members:
                parity["member_seeds"] = seeds
            if int8:
                selftest_atol = INT8_SELFTEST_ATOL
                parity["cpu_int8_instructions"] = int8_instructions()  # where the agreement above was measured
        seed = 20261125
        st_in = selftest_input(seed, [1, 3, s, s])
        st_logits = sess.run(["logits"], {"input": st_in})[0]

        metrics = r.metrics()
        if cal.multilabel is None and (called := _test_as_called(r, cal)) is not None:  # the graph shipped, as it calls
            metrics = {**metrics, "test": {**(metrics.get("test") or {}), **called}}
        spec = cfg.spec or spec_from_labels(cfg.dataset.name, cfg.class_ids)
        files = {f: file_digest(out / f) for f in ("model.onnx", "ood.npz", HEAD_FILE)}
        facts = cal.report.get("facts")
        scaler = cal.temperature.to_dict() if cal.temperature is not None else {}  # multi-label: per condition instead
        bundle = BundleSpec(
            **bundle_identity(name or spec.name, version),
            intended_use=INTENDED_USE,
            label_spec=spec,
            class_ids=cfg.class_ids,
            preprocess=pre,
            model_io=ModelIO(input="input", outputs=GRAPH_OUTPUTS, opset=OPSET,
                             features=int(t_feats.shape[1]), fmap=list(t_fmap.shape[1:]),
                             views=graph.view_kind,
                             members=len(models) if members else None),
            task=spec.task,
            temperature=scaler.get("temperature", 1.0), temperature_bias=scaler.get("bias"),
            temperature_scale=scaler.get("scale"),
            conformal=ConformalParams(**cal.conformal.to_dict()) if cal.conformal is not None else None,
            multilabel=MultilabelParams(severity_head=cfg.train.severity_head, severity_sizes=spec.severity_sizes,
                                        **cal.multilabel.to_dict()) if cal.multilabel is not None else None,
            ood=OODParams(**cal.ood.to_dict()),
            test_metrics={k: v for k, v in (metrics.get("test") or {}).items() if k != "confusion_matrix"},
            calibration=cal.bundle_record(),
            data_fingerprint=cfg.dataset.fingerprint,
            training_config=cfg.train.to_dict(),
            versions=_versions(),
            selftest=SelfTest(seed=seed, shape=[1, 3, s, s], logits=st_logits.tolist(), atol=selftest_atol),
            split=_split_info(r),
            facts=FactsSection.model_validate(facts) if facts else None,
            decision=DecisionParams(**({"severity_floor": cal.report["severity_floor"]["chosen"]}
                                       if "severity_floor" in cal.report else {}),
                                    critical_threshold=(cal.report.get("decision_rule") or {}).get("critical_threshold"),
                                    finding_weights=cal.finding_weights),
            parity=parity,
            files=files,
        )
        bundle.write(out)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        load_bundle(out)  # the bundle must load and pass its own self-test before we call it done
    return final
