"""Out-of-distribution image sets for the benchmarks: far (natural photos, documents, charts, noise, blank) and
near (another medical modality), and the measurement of a gate on them. Natural photos and documents come from
packages installed here (scikit-image, scikit-learn); charts are drawn with matplotlib (line, bar, scatter,
pie, a histogram and an ECG strip from the MIT-BIH record 100)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from carelens.bundle import load_bundle
from carelens.data import open_dataset
from carelens.predict import Engine
from carelens.preprocess import preprocess_batch
from carelens.settings import data_root
from carelens.steps import Run
from carelens.steps.export import export_run


def charts(seed: int = 0) -> dict[str, np.ndarray]:
    """Pictures of charts, as a phone would photograph a screen or a printout (RGB uint8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    x = np.linspace(0, 10, 200)
    try:
        import wfdb

        rec = wfdb.rdrecord(str(data_root() / "ecg_mitbih" / "100"), sampto=1800)
        ecg = rec.p_signal[:, 0]
    except Exception:  # noqa: BLE001 - the ECG strip is optional (no wfdb or no record)
        ecg = None
    draws = {
        "line": lambda ax: ax.plot(x, np.sin(x) + rng.normal(0, 0.1, x.size)),
        "bar": lambda ax: ax.bar(list("ABCDEF"), rng.integers(1, 20, 6)),
        "scatter": lambda ax: ax.scatter(rng.normal(size=80), rng.normal(size=80)),
        "pie": lambda ax: ax.pie(rng.integers(1, 10, 4)),
        "histogram": lambda ax: ax.hist(rng.normal(size=500), bins=20),
    }
    if ecg is not None:
        draws["ecg_strip"] = lambda ax: (ax.plot(ecg, "k", lw=0.8), ax.grid(True, color="r", alpha=0.3))
    for name, draw in draws.items():
        fig, ax = plt.subplots(figsize=(3, 3), dpi=80)
        draw(ax)
        ax.set_title(name)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        buf.seek(0)
        out[f"chart_{name}"] = (plt.imread(buf, format="png")[:, :, :3] * 255).astype(np.uint8)
    return out


def far_ood(seed: int = 0) -> dict[str, np.ndarray]:
    from skimage import data as sk
    from sklearn.datasets import load_sample_images

    out: dict[str, np.ndarray] = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "immunohistochemistry",
                 "retina", "moon", "page", "text", "horse", "brick", "grass", "gravel", "logo", "motorcycle_left",
                 "coins", "clock", "cat"):
        try:
            img = getattr(sk, name)()
        except Exception:  # noqa: BLE001, S112 - some images need optional downloads; skip those
            continue
        img = np.asarray(img)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out[f"skimage_{name}"] = img[:, :, :3].astype(np.uint8)
    for k, img in enumerate(load_sample_images().images):
        out[f"sklearn_sample_{k}"] = img
    out.update(charts(seed))
    rng = np.random.default_rng(seed)
    for k in range(10):
        out[f"noise_{k}"] = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        out[f"blank_{k}"] = np.full((224, 224, 3), int(rng.integers(0, 256)), np.uint8)
    return out


def modality(name: str, n: int = 200, seed: int = 0) -> list[np.ndarray]:
    """n images of another modality: 'xray' (PneumoniaMNIST test), 'ultrasound' (BUSI), 'dermoscopy' (HAM10000),
    'fundus' (ODIR-5K colour fundus photographs)."""
    key = {"xray": "pneumoniamnist", "ultrasound": "busi", "dermoscopy": "ham10000", "fundus": "odir5k"}[name]
    ds = open_dataset(key)
    idx = np.random.default_rng(seed).choice(len(ds), min(n, len(ds)), replace=False)
    return [img for _, img in ds.iter_images(sorted(idx.tolist()))]


def bundle_outputs(bundle: Any, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A bundle's (features, logits) for ``images``, in batches of 32: what its OOD gate reads."""
    feats, logits = [], []
    for k in range(0, len(images), 32):
        lo, fe, _ = bundle.run(preprocess_batch(images[k : k + 32], bundle.preprocess))
        feats.append(fe)
        logits.append(lo)
    return np.concatenate(feats), np.concatenate(logits)


def gate_scores(engine: Engine, images: list[np.ndarray], gate: Any) -> np.ndarray:
    return gate.score(*bundle_outputs(engine.bundle, images))  # type: ignore[no-any-return]


def separation(s_in: np.ndarray, s_out: np.ndarray, threshold: float) -> tuple[float, float]:
    """AUROC of a gate's scores between in-distribution (``s_in``) and other (``s_out``) images, and the share of the
    others it flags (score above ``threshold``)."""
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    return float(roc_auc_score(y, np.r_[s_in, s_out])), float((s_out > threshold).mean())


def measure_ood(run_dir: Path, bundle_dir: Path, gates: dict[str, Any], near_modalities: tuple[str, ...],
                name: str) -> dict[str, Any]:
    """AUROC of each gate (label -> fitted OODGate) between the run's test images and the far and near sets, the
    share of each set flagged, the test pass rate, and the far images each gate lets through."""
    engine = Engine(load_bundle(export_run(run_dir, bundle_dir, name=name, version="bench")))
    pred = Run(run_dir).predictions()
    test_f, test_l = pred.test_features, pred.test_logits
    far_named = far_ood()
    far = list(far_named.values())
    near = [img for m in near_modalities for img in modality(m, 150)]
    out: dict[str, Any] = {}
    for label, gate in gates.items():
        s_in = gate.score(test_f, test_l)
        for kind, imgs in (("far", far), ("near", near)):
            s_out = gate_scores(engine, imgs, gate)
            out[f"ood_auroc_{kind}{label}"], out[f"ood_flagged_{kind}{label}"] = separation(s_in, s_out, gate.threshold_)
            if kind == "far":
                out[f"far_passed{label}"] = [n for n, s in zip(far_named, s_out) if s <= gate.threshold_]
        out[f"ood_pass_rate{label}"] = float((s_in <= gate.threshold_).mean())
    out.update(n_far=len(far), n_near=len(near), near_modalities=list(near_modalities))
    return out
