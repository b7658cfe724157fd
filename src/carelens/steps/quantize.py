"""int8 models: static quantisation of a bundle's ONNX graph, and the run's outputs recomputed with it.

ONNX Runtime's static quantisation in the QDQ format (quantize/dequantize pairs around each operator, which the
runtime fuses into integer kernels): weights int8 per output channel, activations uint8 (the pairing that VNNI and
AMX instructions execute natively), the first convolutions left in float (:data:`FLOAT_CONVS`), activation ranges
from MinMax calibration on images of the *training* split (never validation or test, which fit and measure the
calibration). The int8 model's outputs on every split then replace the fp32 ones, so that temperature, conformal
thresholds and the OOD gate are refitted on what the shipped model actually computes
(:func:`carelens.steps.export.export_run` with ``int8=True``; the same refit serves a graph that averages flipped
views, ``flips=True``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from carelens.console import progress_bar
from carelens.data import Dataset, Splits
from carelens.errors import DataError
from carelens.preprocess import PreprocessConfig, preprocess_batch
from carelens.steps.run import Predictions, Run

__all__ = ["CALIBRATION_IMAGES", "FLOAT_CONVS", "INT8_SELFTEST_ATOL", "calibration_indices", "derived_run",
           "quantize_onnx", "session_predictions", "split_batches"]

CALIBRATION_IMAGES = 128
# The first convolutions stay in float: the stem and the first block (EfficientNet-Lite: stem, depthwise,
# projection). Quantising them carries most of the int8 error one block can (on the `inference` bench model, logit
# RMSE against fp32 0.096 -> 0.067 with them in float), and they are the slowest integer kernels (3 input channels;
# 32 depthwise channels at 112x112), so the graph is no slower. On the chosen HAM10000 recipe (`python bench/flips.py
# --int8`, 2 seeds, test split): balanced-accuracy loss against fp32 0.016 -> 0.005 (mean), top-1 agreement
# 0.970 / 0.977 -> 0.978 / 0.982.
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


def quantize_onnx(src: Path, dst: Path, calibration: list[np.ndarray], input_name: str = "input",
                  float_convs: int = FLOAT_CONVS) -> list[str]:
    """Write the int8 (QDQ, per-channel weights, uint8 activations) version of ``src`` to ``dst``, its activation
    ranges measured on the ``calibration`` batches; the first ``float_convs`` convolutions (graph order) stay in
    float: those with fewer than ``float_convs`` convolutions before them on any path from the input, so that in a
    graph of several models (an ensemble) every model keeps its own first ones. Returns the names of the nodes left
    in float, in graph order."""
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
    return keep


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
