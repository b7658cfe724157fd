"""`carelens export RUN --out BUNDLE`: ONNX + bundle.json + calibration, verified with numbers."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from carelens import __version__
from carelens.bundle._load import load_bundle, selftest_input
from carelens.bundle._manifest import FORMAT_VERSION, BundleSpec, SelfTest, canonical_digest, sha256_file
from carelens.calibrate import load_calibration
from carelens.data import load_run_splits, open_dataset
from carelens.errors import BundleError, DataError
from carelens.labels import LabelSpec
from carelens.preprocess import preprocess
from carelens.train._runs import load_run_model

__all__ = ["export_run"]

OPSET = 17
INTENDED_USE = ("Decision support for triage: estimates which conditions are plausible and how urgently to seek "
                "care. Not a diagnosis; not validated for clinical use.")


class _Exportable(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.forward_all(x)  # type: ignore[no-any-return, operator]


def _versions() -> dict[str, str]:
    out = {"carelens": __version__}
    for pkg in ("torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _parity_images(cfg: dict[str, Any], run: Path, n: int = 16) -> list[np.ndarray]:
    """A fixed batch of real validation images of the run (the first n by id)."""
    source = cfg["dataset"].get("source")
    spec = LabelSpec.model_validate(cfg["spec"]) if cfg.get("spec") else None
    try:
        ds, splits = load_run_splits(run / "splits.json", open_dataset(source, spec))
    except (DataError, TypeError) as exc:
        raise BundleError(f"the run's data ({source}) is needed to verify the export: {exc}") from None
    idx = sorted(splits.indices(ds, "val"), key=lambda i: ds[i].id)[:n]
    return [img for _, img in ds.iter_images(idx)]


def _split_info(run: Path) -> dict[str, Any]:
    doc = json.loads((run / "splits.json").read_text())
    return {"strategy": doc["strategy"], "seed": doc["seed"], "fractions": doc["fractions"],
            "data_fingerprint": doc["fingerprint"], "assignment_sha256": canonical_digest(doc["assignment"]),
            "counts": doc.get("counts")}


def export_run(run: str | Path, out: str | Path, *, name: str | None = None, version: str | None = None,
               parity_images: list[np.ndarray] | None = None, atol: float = 1e-4) -> Path:
    """Export the best model of a calibrated run to a verified bundle directory.

    Raises:
        BundleError: ONNX Runtime and PyTorch disagree beyond ``atol`` or on any decision.
    """
    run, out = Path(run), Path(out)
    cal = load_calibration(run)
    model, pre, cfg = load_run_model(run)
    images = parity_images if parity_images is not None else _parity_images(cfg, run)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    s = pre.image_size
    dummy = torch.zeros(2, 3, s, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            _Exportable(model).eval(), (dummy,), str(out / "model.onnx"), input_names=["input"],
            output_names=["logits", "features", "fmap"], opset_version=OPSET, dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"},
                          "fmap": {0: "batch"}},
        )
    head = model.head.fc  # type: ignore[union-attr]
    np.savez(out / "head.npz", weight=head.weight.detach().numpy(), bias=head.bias.detach().numpy())
    shutil.copy(run / "ood.npz", out / "ood.npz")

    # parity: PyTorch and ONNX Runtime on real validation images
    batch = np.stack([preprocess(img, pre) for img in images])
    with torch.inference_mode():
        t_logits, t_feats, t_fmap = (a.numpy() for a in model.forward_all(torch.from_numpy(batch)))
    from carelens.bundle._load import make_session

    sess = make_session(out / "model.onnx")
    o_logits, _, _ = sess.run(["logits", "features", "fmap"], {"input": batch})
    diff = float(np.abs(o_logits - t_logits).max())
    same = bool((o_logits.argmax(1) == t_logits.argmax(1)).all())
    if diff > atol or not same:
        raise BundleError(f"export check failed: ONNX Runtime and PyTorch logits differ by {diff:.2e} "
                          f"(allowed {atol:.0e}); identical decisions: {same}")
    seed = 20261125
    st_in = selftest_input(seed, [1, 3, s, s])
    st_logits = sess.run(["logits"], {"input": st_in})[0]

    metrics = json.loads((run / "metrics.json").read_text())
    test_cal = {k: v for k, v in (cal.report.get("test") or {}).items() if not k.startswith("reliability")}
    spec_dict = cfg["spec"] or {"name": "unnamed", "classes": [{"id": c, "name": c} for c in cfg["class_ids"]]}
    files = {f: sha256_file(out / f) for f in ("model.onnx", "ood.npz", "head.npz")}
    bundle = BundleSpec(
        format_version=FORMAT_VERSION,
        name=name or spec_dict["name"],
        version=version or dt.datetime.now(dt.UTC).strftime("%Y.%m.%d-%H%M%S"),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        intended_use=INTENDED_USE,
        label_spec=spec_dict,
        class_ids=cfg["class_ids"],
        preprocess=pre.to_dict(),
        model_io={"input": "input", "outputs": ["logits", "features", "fmap"], "opset": OPSET,
                  "features": int(t_feats.shape[1]), "fmap": list(t_fmap.shape[1:])},
        temperature=cal.temperature.temperature_,
        conformal=cal.conformal.to_dict(),
        ood=cal.ood.params(),
        test_metrics={k: v for k, v in (metrics.get("test") or {}).items() if k != "confusion_matrix"},
        calibration=test_cal,
        data_fingerprint=cfg["dataset"]["fingerprint"],
        training_config=cfg["train"],
        versions=_versions(),
        selftest=SelfTest(seed=seed, shape=[1, 3, s, s], logits=st_logits.tolist()),
        split=_split_info(run),
        facts=cal.report.get("facts"),
        parity={"images": len(images), "max_abs_logit_diff": diff, "identical_decisions": same, "atol": atol},
        files=files,
    )
    bundle.write(out)
    load_bundle(out)  # the bundle must load and pass its own self-test before we call it done
    return out
