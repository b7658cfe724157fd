"""int8 models: static quantisation of a bundle's ONNX graph, and the run's outputs recomputed with it.

ONNX Runtime's static quantisation in the QDQ format (quantize/dequantize pairs around each operator, which the
runtime fuses into integer kernels): weights int8 per output channel, activations uint8 (the pairing that VNNI and
AMX instructions execute natively), the first convolutions left in float (:data:`FLOAT_CONVS`), activation ranges
from MinMax calibration on images of the *training* split (never validation or test, which fit and measure the
calibration), then each integer layer's bias corrected on the same images so that its mean output per channel is the
float model's (:func:`correct_biases`). The int8 model's outputs on every split then replace the fp32 ones, so that temperature, conformal
thresholds and the OOD gate are refitted on what the shipped model actually computes
(:func:`carelens.steps.export.export_run` with ``int8=True``; the same refit serves a graph that averages flipped
views, ``flips=True``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from carelens.bundle import make_session
from carelens.console import progress_bar
from carelens.data import Dataset, Splits
from carelens.errors import BundleError, DataError
from carelens.preprocess import PreprocessConfig, preprocess_batch
from carelens.steps.run import Predictions, Run

__all__ = ["CALIBRATION_IMAGES", "FLOAT_CONVS", "INT8_SELFTEST_ATOL", "Quantized", "calibration_indices",
           "correct_biases", "derived_run", "quantize_onnx", "session_predictions", "split_batches"]

CALIBRATION_IMAGES = 128
# The first convolutions stay in float: the stem and the first block (EfficientNet-Lite: stem, depthwise,
# projection). Quantising them carries most of the int8 error one block can (on the `inference` bench model, logit
# RMSE against fp32 0.096 -> 0.067 with them in float), and they are the slowest integer kernels (3 input channels;
# 32 depthwise channels at 112x112: the int8 stem took 0.45 ms against 0.36 in float, ONNX Runtime's profile, one
# thread). The float section's conversions still cost time, by how much depends on the host: the bench model took 4.19
# against 3.88 ms all-int8 on one AVX-512 VNNI AMD EPYC, 3.56 against 2.67 ms on another (two threads, batch 1; the
# second is `python bench/inference.py inference_int8`'s committed result). On the chosen HAM10000 recipe (`python bench/flips.py
# --int8`, 2 seeds, test split): balanced-accuracy loss against fp32 0.016 -> 0.005 (mean), top-1 agreement
# 0.970 / 0.977 -> 0.978 / 0.982. With the bias correction the choice stands (progressive224 seeds, flips, test split:
# every convolution in int8 agrees 0.954 / 0.965, this choice 0.979 / 0.971).
FLOAT_CONVS = 3
# Integer kernels may round differently across CPU instruction sets (VNNI, AMX, AVX2). Too loose to catch saturating
# kernels (on the `inference` bench's int8 bundle, AVX2 without make_session's exact kernels: 0.076 on the self-test
# input, 0.0 with them on the same CPU); not tightened for want of a second kind of CPU to measure across.
INT8_SELFTEST_ATOL = 0.25


def indexed_batches(ds: Dataset, indices: list[int], pre: PreprocessConfig, batch: int = 32
                    ) -> Iterator[tuple[list[int], np.ndarray]]:
    """(positions in ``ds``, batch): the images at ``indices`` (in that order; unreadable ones skipped, as training
    skipped them, and their positions with them) preprocessed as the bundle will, as (n, 3, S, S) float32."""
    pos: list[int] = []
    buf: list[np.ndarray] = []
    for i, img in ds.iter_images(indices):
        pos.append(i)
        buf.append(img)
        if len(buf) == batch:
            yield pos, preprocess_batch(buf, pre)
            pos, buf = [], []
    if buf:
        yield pos, preprocess_batch(buf, pre)


def split_batches(ds: Dataset, indices: list[int], pre: PreprocessConfig, batch: int = 32) -> Iterator[np.ndarray]:
    """The batches of :func:`indexed_batches` without their positions."""
    for _, b in indexed_batches(ds, indices, pre, batch):
        yield b


def calibration_indices(train_indices: list[int], n: int = CALIBRATION_IMAGES) -> list[int]:
    """The images whose activations set the int8 ranges: a seeded sample of ``n`` from the training split, sorted."""
    chosen = np.random.default_rng(0).choice(train_indices, min(n, len(train_indices)), replace=False)
    return sorted(chosen.tolist())


class Quantized(NamedTuple):
    """What :func:`quantize_onnx` did, for the bundle's record."""

    float_nodes: list[str]  # the convolutions left in float, in graph order
    bias_corrected: int  # integer layers whose bias was corrected (0 without the correction)


def quantize_onnx(src: Path, dst: Path, calibration: list[np.ndarray], input_name: str = "input",
                  float_convs: int = FLOAT_CONVS, bias_correction: bool = True) -> Quantized:
    """Write the int8 (QDQ, per-channel weights, uint8 activations) version of ``src`` to ``dst``, its activation
    ranges measured on the ``calibration`` batches; the first ``float_convs`` convolutions (graph order) stay in
    float: those with fewer than ``float_convs`` convolutions before them on any path from the input, so that in a
    graph of several models (an ensemble) every model keeps its own first ones; then, with ``bias_correction``, the
    integer layers' biases corrected on the same batches (:func:`correct_biases`)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self.batches, None)
            return None if b is None else {input_name: b}

    with tempfile.TemporaryDirectory(prefix="carelens-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared))  # shape inference and graph clean-up, as ONNX Runtime advises
        keep = [n.name for n, before in _convs_before(onnx.load(str(prepared)).graph) if n.op_type == "Conv"
                and before < float_convs]
        quantize_static(str(prepared), str(dst), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep)
        corrected = correct_biases(dst, prepared, calibration, input_name) if bias_correction else 0
    return Quantized(keep, corrected)


def correct_biases(model: Path, reference: Path, calibration: list[np.ndarray], input_name: str = "input") -> int:
    """Empirical bias correction of the int8 graph ``model`` (QDQ, rewritten in place) against its float
    ``reference``: each integer convolution or matrix product in turn, in graph order, gets the bias that makes the mean
    of its output over the ``calibration`` batches, per channel, that of the float graph (Nagel et al. 2019,
    *Data-free quantization through weight equalization and bias correction*, section 4.2, its empirical variant).
    Rounding int8 weights and uint8 activations shifts those means (most in depthwise convolutions, whose few
    weights per channel do not average their rounding out), and the shifts add up along the network. In order, because
    each layer's mean depends on the corrections before it (correcting all at once from one measurement overshoots and
    diverges). Returns how many layers were corrected."""
    import onnx
    from onnx import numpy_helper
    from onnx.utils import Extractor

    q, ref = onnx.load(str(model)), onnx.load(str(reference))
    producer = {t: n for n in q.graph.node for t in n.output}
    inits = {i.name: i for i in q.graph.initializer}
    targets = [n for n in q.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2
               and getattr(producer.get(n.input[2]), "op_type", None) == "DequantizeLinear"]
    ref_out = {n.name: n.output[0] for n in ref.graph.node if n.op_type in ("Conv", "Gemm")}
    missing = [n.name for n in targets if n.name not in ref_out]
    if missing:
        raise BundleError(f"the int8 graph's layers {missing[:3]} are not in its float reference")
    want = _channel_means(_subgraph(Extractor(ref), input_name, [ref_out[n.name] for n in targets]), calibration,
                          input_name)
    sub = Extractor(q)  # holds q's initializers themselves: the corrections below reach every later subgraph
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    with progress_bar("int8 bias correction", len(targets)) as advance:
        for node, mean in zip(targets, want, strict=True):
            # the graph up to this layer only, its output the one extra: the layers before it run as they will
            # (fused into integer kernels), and its output is the product before requantisation
            got = _channel_means(_subgraph(sub, input_name, [node.output[0]]), calibration, input_name)[0]
            dq = producer[node.input[2]]  # int32 bias, scale = input scale x weight scale, zero point 0
            bias, scale = inits[dq.input[0]], numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
            # in float64 and clipped before the cast: a dead channel's tiny scale must not overflow an integer type
            fixed = np.clip(np.round(numpy_helper.to_array(bias) - (got - mean) / scale), lo, hi)
            bias.CopyFrom(numpy_helper.from_array(fixed.astype(np.int32), bias.name))
            advance(1)
    onnx.save(q, str(model))
    return len(targets)


def _subgraph(ex: Any, input_name: str, outputs: list[str]) -> bytes:
    """The nodes that ``outputs`` (float tensors) need, from the model under ``ex`` (onnx's Extractor), with those as
    the outputs, serialised."""
    from onnx import TensorProto, helper

    for t in outputs:  # an output needs a declared type; a tensor between two nodes may have none
        ex.value_infos.setdefault(t, helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    made: bytes = ex.extract_model([input_name], outputs).SerializeToString()
    return made


def _channel_means(graph: bytes, batches: list[np.ndarray], input_name: str) -> list[np.ndarray]:
    """Each output's mean per channel (axis 1) over its rows for the images of ``batches``, in float64."""
    session = make_session(graph)
    sums: list[np.ndarray] = []
    rows = np.zeros(len(session.get_outputs()))
    for b in (c for batch in batches for c in np.array_split(batch, -(-len(batch) // 4))):
        # 4 images at a time: the float reference returns every layer's whole output (about 16 MB a row at 224 px,
        # three rows an image with flips)
        outs = session.run(None, {input_name: b})
        # per row, the mean over every axis but the channel's (the spatial positions of a convolution's output); rows,
        # not images: a graph that averages views runs its layers on every view of every image
        part = [o.reshape(o.shape[0], o.shape[1], -1).astype(np.float64).mean(axis=2).sum(axis=0) for o in outs]
        sums = part if not sums else [s + p for s, p in zip(sums, part, strict=True)]
        rows += [o.shape[0] for o in outs]
    return [s / r for s, r in zip(sums, rows, strict=True)]


def _convs_before(graph: Any) -> list[tuple[Any, int]]:
    """Each node of a (topologically sorted) ONNX graph with the most convolutions on a path from the inputs to it."""
    made: dict[str, int] = {}  # tensor -> convolutions up to and including its producer
    out = []
    for node in graph.node:
        before = max((made.get(t, 0) for t in node.input), default=0)
        out.append((node, before))
        for t in node.output:
            made[t] = before + (node.op_type == "Conv")
    return out


def _outputs(session: Any, batches: Iterator[np.ndarray], n: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
    logits, feats = [], []
    with progress_bar(f"shipped model's outputs: {desc}", n) as advance:
        for b in batches:
            lo, fe = session.run(["logits", "features"], {"input": b})
            logits.append(lo)
            feats.append(fe)
            advance(len(b))
    return np.concatenate(logits), np.concatenate(feats)


def session_predictions(run: Run, session: Any, ds: Dataset, splits: Splits, ref: Predictions, *,
                        keep_train: bool = False) -> Predictions:
    """The run's predictions (``ref``, the trained model's) recomputed with ``session`` (the graph shipped: int8, or
    with flips averaged in it) on the run's data (``ds``, ``splits``: :meth:`Run.data`): the same splits, images and
    order as training used, so that the labels and ids stay those of ``ref``. ``keep_train``: the training split's
    outputs are ``ref``'s, not recomputed (the calibration reads only its features there: the OOD gate's model of the
    training data)."""
    pre = run.config.preprocess
    out: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        y = getattr(ref, f"{split}_y")
        if y is None:
            continue
        if split == "train" and keep_train:
            out |= {"train_logits": ref.train_logits, "train_features": ref.train_features, "train_y": y}
            continue
        idx = splits.indices(ds, split)
        logits, feats = _outputs(session, split_batches(ds, idx, pre), len(idx), split)
        if len(logits) != len(y):
            raise DataError(f"the {split} split now has {len(logits)} readable images, training had {len(y)}: the "
                            "data changed since training; retrain before exporting")
        out |= {f"{split}_logits": logits, f"{split}_features": feats, f"{split}_y": y}
        if split != "train":
            out[f"{split}_ids"] = getattr(ref, f"{split}_ids")
    return Predictions(**out)


def derived_run(run: Run, folder: Path, predictions: Predictions) -> Run:
    """A run folder beside ``run`` with the same configuration, splits and metrics but other predictions (the
    shipped graph's), for the calibrate step to refit on."""
    for name in (Run.CONFIG, Run.SPLITS, Run.METRICS):
        if run.file(name).is_file():
            shutil.copy(run.file(name), folder / name)
    derived = Run(folder)
    derived.write_predictions(predictions, compress=False)  # a scratch folder, read back once
    return derived
