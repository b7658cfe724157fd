"""`carelens import MODEL.onnx`: an image classifier trained elsewhere (a team's ResNet50, say) as a carelens bundle.

The model is checked (one image input, channels first, the size the preprocessing gives; an output with one
score per class of the label spec), run on the data's splits exactly as the bundle will run it (the one
``preprocess`` function), and calibrated as a carelens model is: temperature, conformal thresholds and the decision
rule on the validation split, an out-of-distribution gate fitted on training images (on the model's features when
it has a second 2-D output, else on its logits: the bundle says which), figures on the test split. The bundle then
loads, predicts, serves and evaluates like any other; it has no feature map, so it gives no heatmaps.

Models whose output is already a softmax (Keras exports usually are) get a ``Log`` appended to the graph, so that
the bundle reads log-probabilities (logits up to a constant, which calibration does not see). Models that read one
grey channel (many X-ray and ultrasound models) get a three-channel input that passes its first channel on: carelens
feeds every model (batch, 3, height, width), and with ``color=L`` the three channels are the same grey image.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carelens import __version__
from carelens.bundle import (
    BundleSpec,
    ConformalParams,
    DecisionParams,
    ModelIO,
    OODParams,
    SelfTest,
    SplitInfo,
    bundle_folder,
    bundle_identity,
    load_bundle,
    make_session,
    selftest_input,
)
from carelens.calibrate import ConformalScore
from carelens.console import progress_bar
from carelens.data import Dataset, Splits, load_splits, make_splits, open_dataset
from carelens.errors import ConfigError, DataError
from carelens.hashing import file_digest
from carelens.labels import LabelSpec
from carelens.metrics import balanced_accuracy, classification_metrics, softmax
from carelens.preprocess import PreprocessConfig
from carelens.steps.calibrate import fit_calibration
from carelens.steps.quantize import indexed_batches
from carelens.steps.run import Predictions

__all__ = ["TRAIN_IMAGES", "GraphIO", "import_onnx", "inspect_graph"]

TRAIN_IMAGES = 2000  # training images scored for the OOD gate's statistics (all of them when fewer)
PROBABILITY_TOL = 1e-3  # outputs in [0, 1] whose rows sum to 1 within this are probabilities, not logits
INTENDED_USE = ("Decision support for triage: estimates which conditions are plausible and how urgently to seek care. "
                "Not a diagnosis; not validated for clinical use. Model imported from outside carelens: its training "
                "is not recorded here.")


@dataclass(frozen=True)
class GraphIO:
    """What carelens reads from an imported graph."""

    input: str
    logits: str
    features: str | None  # a second 2-D output the OOD gate can read; None: it reads the logits
    feature_width: int


def inspect_graph(session: Any, n_classes: int, pre: PreprocessConfig) -> GraphIO:
    """The graph's input and outputs, checked against the label spec and the preprocessing (ConfigError naming
    what does not fit and what to do)."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ConfigError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); carelens feeds "
                          "one: a batch of images")
    x = inputs[0]
    shape = list(x.shape)
    if x.type != "tensor(float)" or len(shape) != 4:
        raise ConfigError(f"the model's input {x.name!r} is {x.type} of shape {shape}; carelens feeds float32 images "
                          "as (batch, 3, height, width)")
    if shape[1] != 3 and not isinstance(shape[1], str | None):
        hint = " (channels last: export the model channels-first)" if shape[3] == 3 else ""
        raise ConfigError(f"the model's input {x.name!r} has shape {shape}; carelens feeds (batch, 3, height, "
                          f"width){hint}")
    fixed = [d for d in shape[2:] if isinstance(d, int)]
    if any(d != pre.image_size for d in fixed):
        raise ConfigError(f"the model takes {shape[2]}x{shape[3]} images but the preprocessing gives "
                          f"{pre.image_size}x{pre.image_size}: set size={fixed[0]} in --preprocess")
    probe = np.zeros((2, 3, pre.image_size, pre.image_size), np.float32)
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, {x.name: probe}), strict=True))
    flat = {n: a.shape for n, a in got.items() if a.ndim == 2 and a.shape[0] == 2}
    logits = [n for n, s in flat.items() if s[1] == n_classes]
    if not logits:
        raise ConfigError(f"no output of the model has one score per class: the label spec has {n_classes} classes, "
                          f"the outputs are {', '.join(f'{n} {list(got[n].shape)}' for n in names)}")
    features = next((n for n in flat if n != logits[0]), None)
    return GraphIO(input=x.name, logits=logits[0], features=features,
                   feature_width=int(flat[features][1]) if features else n_classes)


def _is_probability(scores: np.ndarray) -> bool:
    return bool(scores.min() >= 0 and scores.max() <= 1 and np.abs(scores.sum(1) - 1).max() < PROBABILITY_TOL)


def _append_log(src: Path, dst: Path, output: str) -> str:
    """``src`` with ``log(clip(output, 1e-7, 1))`` appended as a new output; its name."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(str(src))
    name = f"{output}_log"
    lo = helper.make_tensor(f"{name}_min", TensorProto.FLOAT, [], [1e-7])
    hi = helper.make_tensor(f"{name}_max", TensorProto.FLOAT, [], [1.0])
    m.graph.initializer.extend([lo, hi])
    m.graph.node.extend([helper.make_node("Clip", [output, lo.name, hi.name], [f"{name}_clipped"]),
                         helper.make_node("Log", [f"{name}_clipped"], [name])])
    m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    onnx.save(m, str(dst))
    return name


def _grey_input(src: Path, dst: Path, name: str) -> str:
    """``src`` read through a new (batch, 3, height, width) input whose first channel feeds its one-channel input
    ``name``; the new input's name."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(str(src))
    old = next(i for i in m.graph.input if i.name == name)
    dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in old.type.tensor_type.shape.dim]
    new = helper.make_tensor_value_info(f"{name}_rgb", TensorProto.FLOAT, [dims[0], 3, *dims[2:]])
    first = helper.make_tensor(f"{name}_first_channel", TensorProto.INT64, [1], [0])
    m.graph.initializer.append(first)
    m.graph.node.insert(0, helper.make_node("Gather", [new.name, first.name], [name], axis=1))  # (N, 1, H, W)
    m.graph.input.remove(old)
    m.graph.input.insert(0, new)
    onnx.save(m, str(dst))
    return new.name


def _graph_opset(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return int(next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0))


def _score(session: Any, io: GraphIO, ds: Dataset, idx: list[int], pre: PreprocessConfig, class_ids: list[str],
           split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(logits, features, labels, ids) of the images at ``idx``, run as the bundle will run them."""
    names = list(dict.fromkeys([io.logits, io.features or io.logits]))
    logits, feats, kept = [], [], []
    with progress_bar(f"scoring the {split} split", len(idx)) as advance:
        for pos, b in indexed_batches(ds, idx, pre):
            out = dict(zip(names, session.run(names, {io.input: b}), strict=True))
            logits.append(out[io.logits])
            feats.append(out[io.features or io.logits])
            kept += pos
            advance(len(b))
    if not kept:
        raise DataError(f"no readable image in the {split} split")
    index = {c: k for k, c in enumerate(class_ids)}
    y = np.asarray([index[ds[i].label] for i in kept])
    return np.concatenate(logits), np.concatenate(feats), y, np.asarray([ds[i].id for i in kept])


def import_onnx(model: str | Path, out: str | Path, *, spec: LabelSpec, data: str | Path,
                preprocess_config: PreprocessConfig, splits: str | Path | None = None, name: str | None = None,
                version: str | None = None, alpha: float = 0.1, score: ConformalScore = "lac",
                class_conditional: bool = True, pool_noncritical: bool = False, critical_miss_target: float = 0.02,
                train_images: int = TRAIN_IMAGES, seed: int = 0) -> Path:
    """Wrap the ONNX image classifier ``model`` into a verified bundle at ``out``.

    Args:
        spec: the classes in the order of the model's outputs, with their triage levels.
        data: the labelled data to calibrate on (any source ``open_dataset`` reads).
        splits: a split file made for ``data`` (``carelens split``); none: a new grouped split (seed ``seed``).
            The validation split must not have been used to train the model, or its calibration is optimistic.
        alpha, score, class_conditional, pool_noncritical, critical_miss_target: the prediction sets and the
            decision rule, as :func:`carelens.steps.calibrate_run` fits them for a model trained here.

    Raises:
        ConfigError: the graph does not fit the spec or the preprocessing, or it is no better than chance on the
            validation split (a wrong class order or preprocessing, most likely).
    """
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise ConfigError(f"no model file {model}")
    if spec.multilabel:
        raise ConfigError("importing a multi-label model is not supported yet; import a multi-class classifier")
    pre = preprocess_config
    ds = open_dataset(data, spec)
    sp: Splits = load_splits(splits) if splits is not None else make_splits(ds, seed=seed)
    ds = sp.covered(ds, f"split file {splits}")  # the examples it assigns (a subset is fine), checked
    unknown = sorted({e.label for e in ds} - set(spec.class_ids))
    if unknown:
        raise DataError(f"the data has labels the spec does not name: {', '.join(unknown)}")
    with bundle_folder(out) as building:  # built beside it; replaces the old bundle only once this one loads
        _import(model, building, spec, ds, sp, pre, name, version, train_images, seed, alpha=alpha, score=score,
                class_conditional=class_conditional, pool_noncritical=pool_noncritical,
                critical_miss_target=critical_miss_target)
    return out


def _import(model: Path, out: Path, spec: LabelSpec, ds: Dataset, sp: Splits, pre: PreprocessConfig, name: str | None,
            version: str | None, train_images: int, seed: int, *, alpha: float, score: ConformalScore,
            class_conditional: bool, pool_noncritical: bool, critical_miss_target: float) -> None:
    class_ids = list(spec.class_ids)
    target = out / "model.onnx"
    shutil.copy(model, target)
    session = make_session(target)
    inputs_were = "three channels"
    x = session.get_inputs()
    if len(x) == 1 and len(x[0].shape) == 4 and x[0].shape[1] == 1:  # a grey model: fed the first of three channels
        if pre.color != "L":
            raise ConfigError(f"the model's input {x[0].name!r} has one channel {list(x[0].shape)}: a grey-image model; "
                              "add color=L to --preprocess so that every image is read as grey")
        _grey_input(target, target, x[0].name)
        session = make_session(target)
        inputs_were = "one grey channel (fed the first of the three carelens gives, all the same grey)"
    io = inspect_graph(session, len(class_ids), pre)
    val_idx = sp.indices(ds, "val")
    if not val_idx:
        raise DataError("the split has no validation examples: calibration needs them")
    outputs_were = "logits"
    _, first = next(indexed_batches(ds, val_idx, pre))  # the first batch of validation images tells
    if _is_probability(session.run([io.logits], {io.input: first})[0]):  # a softmax output: read its log instead
        io = GraphIO(io.input, _append_log(target, target, io.logits), io.features, io.feature_width)
        session = make_session(target)
        outputs_were = "probabilities (log appended to the graph)"
    va = _score(session, io, ds, val_idx, pre, class_ids, "val")
    chance = 1 / len(class_ids)
    val_bacc = balanced_accuracy(va[2], va[0].argmax(1), len(class_ids))
    if val_bacc <= chance + 0.05:
        raise ConfigError(f"the model is no better than chance on the validation split (balanced accuracy "
                          f"{val_bacc:.3f}, chance {chance:.3f}): check that the spec lists the classes in the order "
                          "of the model's outputs and that --preprocess matches how it was trained")
    train_idx = sp.indices(ds, "train")
    rng = np.random.default_rng(seed)
    if len(train_idx) > train_images:
        train_idx = sorted(rng.choice(train_idx, train_images, replace=False).tolist())
    tr = _score(session, io, ds, train_idx, pre, class_ids, "train")
    test_idx = sp.indices(ds, "test")
    te = _score(session, io, ds, test_idx, pre, class_ids, "test") if test_idx else None
    preds = Predictions(train_logits=tr[0], train_features=tr[1], train_y=tr[2], val_logits=va[0],
                        val_features=va[1], val_y=va[2], val_ids=va[3],
                        **({"test_logits": te[0], "test_features": te[1], "test_y": te[2], "test_ids": te[3]}
                           if te is not None else {}))
    cal, _ = fit_calibration(preds, class_ids, spec, alpha=alpha, score=score, class_conditional=class_conditional,
                             pool_noncritical=pool_noncritical, critical_miss_target=critical_miss_target)
    assert cal.temperature is not None and cal.conformal is not None
    cal.ood.save(out / "ood.npz")
    shape = [1, 3, pre.image_size, pre.image_size]
    st_seed = 20261125
    st_logits = session.run([io.logits], {io.input: selftest_input(st_seed, shape)})[0]
    test_metrics = (classification_metrics(te[2], softmax(te[0]), class_ids) if te is not None else {})
    record = {"imported": {"file": model.name, "sha256": file_digest(model), "inputs": inputs_were,
                           "outputs": outputs_were,
                           "ood_reads": f"features ({io.features})" if io.features else "logits",
                           "train_images_for_ood": len(tr[2]), "val_balanced_accuracy": val_bacc,
                           "imported_with": f"carelens {__version__}"}}
    bundle = BundleSpec(
        **bundle_identity(name or spec.name, version),
        intended_use=INTENDED_USE,
        label_spec=spec,
        class_ids=class_ids,
        preprocess=pre,
        model_io=ModelIO(input=io.input, outputs=[io.logits, io.features or io.logits], opset=_graph_opset(target),
                         features=io.feature_width, fmap=[]),
        task="multiclass",
        temperature=cal.temperature.temperature_,
        conformal=ConformalParams(**cal.conformal.to_dict()),
        ood=OODParams(**cal.ood.to_dict()),
        test_metrics={k: v for k, v in test_metrics.items() if k != "confusion_matrix"},
        calibration=cal.bundle_record(),
        data_fingerprint=ds.fingerprint(),
        training_config=record,
        versions={"carelens": __version__},
        selftest=SelfTest(seed=st_seed, shape=shape, logits=st_logits.tolist()),
        split=SplitInfo(strategy=sp.strategy, seed=sp.seed, fractions=list(sp.fractions),
                        data_fingerprint=sp.fingerprint, assignment_sha256=sp.assignment_digest(),
                        counts=sp.counts(ds)),
        decision=DecisionParams(critical_threshold=(cal.report.get("decision_rule") or {}).get("critical_threshold"),
                                finding_weights=cal.finding_weights),
        parity={"imported": True, "note": "no PyTorch model to compare with: the ONNX graph is the model"},
        files={f: file_digest(out / f) for f in ("model.onnx", "ood.npz")},
    )
    bundle.write(out)
    load_bundle(out)  # loads and passes its own self-test, as every bundle must
