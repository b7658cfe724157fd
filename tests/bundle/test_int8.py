"""`carelens export --int8`: the statically quantised model shipped with its calibration refitted on its own
outputs, and its agreement with the fp32 model recorded in place of the fp32 parity check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from typer.testing import CliRunner

from carelens.bundle import int8_instructions, load_bundle
from carelens.cli import app
from carelens.metrics import balanced_accuracy
from carelens.predict import Engine
from carelens.steps import Run, calibrate_run
from carelens.steps.quantize import FLOAT_CONVS


def test_int8_export_refits_calibration_and_records_agreement(tiny_pneumonia_run: Path, tmp_path: Path) -> None:
    calibrate_run(tiny_pneumonia_run)
    fp32_cal = json.loads((tiny_pneumonia_run / "calibration.json").read_text())
    out = tmp_path / "chest8"
    r = CliRunner().invoke(app, ["export", str(tiny_pneumonia_run), "--out", str(out), "--int8", "--name", "chest8",
                                 "--version", "1"])
    assert r.exit_code == 0, r.output
    assert "top-1 agreement with the trained model" in r.output
    graph = onnx.load(str(out / "model.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}  # QDQ: integer kernels at run time
    # the stem and the first block stay in float (weights stored as they are), every later convolution reads int8
    # weights through a DequantizeLinear
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert FLOAT_CONVS == 3 and len(convs) > FLOAT_CONVS
    assert [c.input[1] in dequantized for c in convs] == [False] * FLOAT_CONVS + [True] * (len(convs) - FLOAT_CONVS)
    assert not (out / "model.fp32.onnx").exists()
    doc = json.loads((out / "bundle.json").read_text())
    par = doc["parity"]
    assert par["int8"] and par["fp32_vs_torch"]["identical_decisions"] and par["calibration_images"] == 128
    assert par["float_nodes"] == [c.name for c in convs[:FLOAT_CONVS]]
    # every integer layer's bias corrected (the README's int8 section: logit error against fp32 about halved): the
    # later convolutions and the head
    assert par["bias_corrected_layers"] == len(convs) - FLOAT_CONVS + sum(n.op_type == "Gemm" for n in graph.node)
    assert par["cpu_int8_instructions"] == int8_instructions()  # which kind of CPU measured the agreement
    # measured on this run: agreement 1.00, the same balanced accuracy as fp32 (validation, 524 images)
    assert par["top1_agreement"] > 0.9 and par["images"] > 400
    assert abs(par["val_balanced_accuracy_shipped"] - par["val_balanced_accuracy_trained"]) < 0.05
    lost = par["val_balanced_accuracy_trained"] - par["val_balanced_accuracy_shipped"]
    assert ("warning: int8 loses" in r.output) == (lost > 0.005), r.output  # a loss worth saying is said loudly
    # the calibration shipped is the int8 model's own: fitted on its outputs, not copied from the fp32 run
    assert doc["temperature"] != fp32_cal["temperature"]
    assert doc["ood"]["threshold"] != fp32_cal["ood"]["threshold"]
    assert doc["selftest"]["atol"] == 0.25
    b = load_bundle(out)  # hashes and self-test
    ds, splits = Run(tiny_pneumonia_run).data()
    test = splits.indices(ds, "test")
    images = [img for _, img in ds.iter_images(test)]
    results = Engine(b).assess(images)
    # the int8 bundle answers as the refitted calibration says: the test figures it records are its own answers
    # (calibrated probabilities, which may move the argmax of the logits when the scaler learns class biases, as it
    # does on an AVX-512 VNNI AMD host), not the fp32 model's
    pred = np.asarray([ds.spec.class_ids.index(a.top[0].id) for a, _ in results])
    y = np.asarray([ds.spec.class_ids.index(ds[i].label) for i in test])
    assert all(a.model.name == "chest8" for a, _ in results) and (pred == y).mean() > 0.7  # measured 0.86
    assert doc["test_metrics"]["balanced_accuracy"] == balanced_accuracy(y, pred, len(ds.spec.class_ids))

def test_every_branch_keeps_its_first_convolutions_in_float(tmp_path: Path) -> None:
    """In a graph of several models (an ensemble), each model's stem stays in float, whatever the node order."""
    import warnings

    import torch
    from torch import nn

    from carelens.steps.quantize import quantize_onnx

    class TwoModels(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = (nn.Sequential(*(nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1) for i in range(4)))
                              for _ in range(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.a(x) + self.b(x)).mean(dim=(2, 3))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TwoModels().eval(), (torch.zeros(1, 3, 16, 16),), str(tmp_path / "two.onnx"),
                          input_names=["input"], output_names=["out"], opset_version=17, dynamo=False)
    batches = [np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32) for i in range(2)]
    kept = quantize_onnx(tmp_path / "two.onnx", tmp_path / "two8.onnx", batches, float_convs=2).float_nodes
    assert sorted(kept) == ["/a/a.0/Conv", "/a/a.1/Conv", "/b/b.0/Conv", "/b/b.1/Conv"]
    graph = onnx.load(str(tmp_path / "two8.onnx")).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    assert sorted(n.name for n in graph.node if n.op_type == "Conv" and n.input[1] not in dequantized) == sorted(kept)


def test_integer_convolutions_do_not_saturate_on_any_cpu(tmp_path: Path) -> None:
    """The sessions bundles run on compute a quantised convolution exactly on every x86 CPU. Without VNNI (AVX2, an
    AVX-512 CPU before VNNI) ONNX Runtime's default uint8 x int8 kernel adds products in pairs into int16: 255 * 127
    twice is 64,770, saturated to 32,767, and this convolution's output comes out halved (32.5 for 64, measured on an
    AVX2 AMD EPYC) unless :func:`make_session` asks for the exact kernels. On a VNNI or AMX CPU it holds either way."""
    from onnx import TensorProto, helper, numpy_helper

    from carelens.bundle import make_session

    c = 64
    w = np.full((8, c, 1, 1), 127, np.int8)
    w[1::2] = -127
    consts = {"xs": np.float32(1 / 255), "xz": np.uint8(0), "w": w, "ws": np.float32(1 / 127), "wz": np.int8(0),
              "ys": np.float32(1.0), "yz": np.uint8(128)}
    node = helper.make_node
    graph = helper.make_graph(
        [node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]), node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
         node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]), node("Conv", ["xd", "wd"], ["conv"]),
         node("QuantizeLinear", ["conv", "ys", "yz"], ["yq"]), node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])],
        "qdq_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "qdq.onnx"))
    y = make_session(tmp_path / "qdq.onnx").run(None, {"x": np.ones((1, c, 4, 4), np.float32)})[0]
    # exact: 64 inputs at 255 (1.0) times weights of 127 (+-1.0) sum to +-64, within the output's range [-128, 127]
    assert np.array_equal(y[0, :, 0, 0], np.tile([64.0, -64.0], 4))
    assert np.array_equal(y, np.broadcast_to(y[:, :, :1, :1], y.shape))


def test_bias_correction_brings_the_int8_model_closer_to_float(tiny_ham_run: Path, tmp_path: Path) -> None:
    """Empirical bias correction (correct_biases, on by default in quantize_onnx): on images the correction never saw,
    the int8 EfficientNet-Lite0's logits and features come closer to the float model's, and only the integer layers'
    biases change. The graph averages flipped views (`export --flips`), so its layers see three rows an image: a
    correction measured per image instead of per row would overshoot threefold and make the model worse."""
    import torch
    from onnx import numpy_helper

    from carelens.bundle import make_session
    from carelens.models import GRAPH_OUTPUTS, ShippedGraph, export_onnx
    from carelens.steps.export import load_run_model
    from carelens.steps.quantize import calibration_indices, quantize_onnx, split_batches

    r = Run(tiny_ham_run)
    ds, splits = r.data()
    pre = r.config.preprocess
    s = pre.image_size
    export_onnx(ShippedGraph([load_run_model(r)], True, False).eval(), (torch.zeros(2, 3, s, s),),
                tmp_path / "fp32.onnx", ["input"], GRAPH_OUTPUTS)
    cal = list(split_batches(ds, calibration_indices(splits.indices(ds, "train"), 64), pre, batch=16))
    for name, corrected in (("plain", False), ("corrected", True)):
        quantize_onnx(tmp_path / "fp32.onnx", tmp_path / f"{name}.onnx", cal, bias_correction=corrected)
    held = list(split_batches(ds, splits.indices(ds, "val"), pre))  # never seen by the quantisation

    def outputs(name: str) -> tuple[np.ndarray, np.ndarray]:
        sess = make_session(tmp_path / f"{name}.onnx")
        lo, fe = zip(*(sess.run(["logits", "features"], {"input": b}) for b in held), strict=True)
        return np.concatenate(lo), np.concatenate(fe)

    ref = outputs("fp32")
    err = {name: [float(np.sqrt(((a - b) ** 2).mean())) for a, b in zip(outputs(name), ref, strict=True)]
           for name in ("plain", "corrected")}
    # measured (AMD EPYC, VNNI): logits RMSE 0.189 -> 0.148, features 0.166 -> 0.081
    assert err["corrected"][0] < 0.9 * err["plain"][0] and err["corrected"][1] < 0.75 * err["plain"][1]

    def initializers(name: str) -> dict[str, np.ndarray]:
        return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / f"{name}.onnx")).graph.initializer}

    plain, corrected = initializers("plain"), initializers("corrected")
    assert plain.keys() == corrected.keys()
    biases = [k for k, v in plain.items() if k.endswith("_quantized") and v.dtype == np.int32]  # the integer layers'
    assert len(biases) > 40 and sum(not np.array_equal(plain[k], corrected[k]) for k in biases) > 0.9 * len(biases)
    assert all(np.array_equal(plain[k], corrected[k]) for k in plain if k not in biases)  # nothing else changes
