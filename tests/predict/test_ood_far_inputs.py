"""The out-of-distribution gate on inputs that are plainly not skin: blank frames, noise, a chart."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from carelens.bundle import load_bundle
from carelens.predict import Engine


def _chart() -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 3), dpi=80)
    ax.bar(list("ABCDEF"), [3, 7, 2, 9, 4, 6])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return (plt.imread(buf, format="png")[:, :, :3] * 255).astype(np.uint8)


def test_blank_noise_and_charts_cannot_be_assessed(ham_bundle: Path) -> None:
    engine = Engine(load_bundle(ham_bundle))
    rng = np.random.default_rng(0)
    far = [np.full((128, 128, 3), v, np.uint8) for v in (0, 128, 255)]
    far += [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(3)] + [_chart()]
    features = engine.infer(far[:1]).features
    # the gate reads the pooled features and the middle stage's channel means and deviations
    assert features.shape[1] == engine.bundle.spec.model_io.features > 1280
    for a, _ in engine.assess(far):
        assert not a.in_distribution
        assert a.triage.reason.startswith("cannot assess")
