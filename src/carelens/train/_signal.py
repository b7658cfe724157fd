"""Training the ECG networks (``task: signal``): heartbeats (multi-class) and whole recordings (multi-label).
The heartbeat network: the same imbalance strategies (class-weighted or focal
loss, :func:`build_loss`) and the same selection rule as images (the epoch with the best validation
balanced accuracy), on 1-D windows and RR features instead of images.

Augmentation: amplitude scaling (0.8-1.2), a small baseline shift and white noise per beat (the variation
between leads, electrode placements and recordings), and a time stretch about the R-peak (0.85-1.15: QRS and
QT widths differ between patients and with heart rate); never a time shift (the window is centred on the
R-peak by construction).

Which weights to keep: the heartbeat validation split holds later beats of the *training* patients (every DS1
patient is needed for training), so its balanced accuracy says little about new patients; the beat network
therefore keeps the weights at the end of its one-cycle schedule (``keep="last"``) and reports the validation
figure per epoch. Recording networks validate on other patients (PTB-XL fold 9) and keep the best epoch."""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

from carelens import __version__
from carelens.bundle import DecisionParams, write_signal_bundle
from carelens.calibrate import ConformalClassifier, MultilabelCalibrator, OODGate, TemperatureScaler
from carelens.ecg import BEAT_WINDOW, BeatSet
from carelens.errors import ConfigError
from carelens.labels import LabelSpec
from carelens.models import BeatNet, RecordNet, export_onnx
from carelens.steps import choose_multilabel_rule, multilabel_report, ood_classes, urgent_recall_floor
from carelens.tasks import OutputLayout
from carelens.train._losses import build_loss, positive_weights
from carelens.train._runtime import configure_runtime

__all__ = ["SignalTrainResult", "export_beats", "export_records", "out_of_fold_records", "predict_beats", "predict_records",
           "train_beats", "train_records"]


M = TypeVar("M", BeatNet, RecordNet)


@dataclass
class SignalTrainResult(Generic[M]):
    model: M
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    wall_s: float = 0.0


@torch.no_grad()
def predict_beats(model: BeatNet, beats: BeatSet, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(logits (n, k), features (n, d)) in evaluation mode."""
    model.eval()
    logits, feats = [], []
    for i in range(0, len(beats), batch):
        lo, f = model(torch.from_numpy(beats.waves[i : i + batch]), torch.from_numpy(beats.rr[i : i + batch]))
        logits.append(lo.numpy())
        feats.append(f.numpy())
    return np.concatenate(logits), np.concatenate(feats)


Keep = Literal["best", "last"]


def _fit(model: M, n: int, loss_of: Callable[[np.ndarray], torch.Tensor], score: Callable[[], float], metric: str, *,
         epochs: int, lr: float, batch: int, weight_decay: float, rng: np.random.Generator,
         progress: Callable[[int], None] | None, keep: Keep = "best") -> SignalTrainResult[M]:
    """The loop both networks share: AdamW with a one-cycle schedule; after each epoch ``score`` (on validation)
    is recorded as ``metric``; the best epoch's weights are kept, or the last epoch's (``keep="last"``)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * int(np.ceil(n / batch)))
    result = SignalTrainResult(model)
    best: tuple[float, dict[str, Any]] | None = None
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(n)
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            loss = loss_of(idx)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        value = score()
        result.history.append({"epoch": epoch + 1, "train_loss": total / n, metric: value})
        if keep == "last":  # the model as it stands at the end is the one kept: nothing to copy
            result.best_epoch = epoch + 1
        elif best is None or value > best[0]:
            best = (value, copy.deepcopy(model.state_dict()))
            result.best_epoch = epoch + 1
        if progress:
            progress(1)
    if best is not None:
        model.load_state_dict(best[1])
    result.wall_s = time.perf_counter() - t0
    return result


STRETCH = (0.85, 1.15)  # time stretch about the R-peak
NOISE_SD = 0.03  # white noise, in units of the record's median R amplitude


def stretch_beats(waves: np.ndarray, factors: np.ndarray, centre: int) -> np.ndarray:
    """Each window (n, channels, L) stretched in time about sample ``centre`` by its factor (linear
    interpolation, edges held)."""
    _, c, length = waves.shape
    src = np.clip(centre + (np.arange(length) - centre)[None, :] * factors[:, None], 0, length - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, length - 1)
    frac = (src - i0)[:, None, :]
    g0 = np.take_along_axis(waves, np.repeat(i0[:, None, :], c, 1), 2)
    g1 = np.take_along_axis(waves, np.repeat(i1[:, None, :], c, 1), 2)
    return (g0 * (1 - frac) + g1 * frac).astype(np.float32)  # type: ignore[no-any-return]


def train_beats(train: BeatSet, val: BeatSet, n_classes: int, *, epochs: int = 12, lr: float = 2e-3, batch: int = 256,
                imbalance: Sequence[str] = ("weighted",), seed: int = 0, threads: int | None = None, keep: Keep = "last",
                progress: Callable[[int], None] | None = None) -> SignalTrainResult[BeatNet]:
    configure_runtime(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = BeatNet(n_classes, train.rr.shape[1])
    loss_fn = build_loss(imbalance, np.maximum(np.bincount(train.y, minlength=n_classes), 1).tolist())
    centre = round(BEAT_WINDOW["before_s"] * BEAT_WINDOW["fs"])

    def loss_of(idx: np.ndarray) -> torch.Tensor:
        wave = train.waves[idx] * rng.uniform(0.8, 1.2, (len(idx), 1, 1)).astype(np.float32)
        wave = stretch_beats(wave, rng.uniform(*STRETCH, len(idx)), centre)
        wave += rng.normal(0, NOISE_SD, wave.shape).astype(np.float32)
        wave += rng.normal(0, 0.05, (len(idx), 1, 1)).astype(np.float32)  # a baseline offset
        logits, _ = model(torch.from_numpy(wave), torch.from_numpy(train.rr[idx]))
        return loss_fn(logits, torch.from_numpy(train.y[idx]))  # type: ignore[no-any-return]

    def score() -> float:
        return float(balanced_accuracy_score(val.y, predict_beats(model, val)[0].argmax(1)))

    return _fit(model, len(train), loss_of, score, "val_balanced_accuracy", epochs=epochs, lr=lr, batch=batch,
                weight_decay=1e-4, rng=rng, progress=progress, keep=keep)


def export_beats(model: BeatNet, train: BeatSet, val: BeatSet, out: Path, *, spec: LabelSpec, name: str = "ecg_beats",
                 version: str = "1", alpha: float = 0.1, metrics: dict[str, Any] | None = None,
                 training: dict[str, Any] | None = None) -> Path:
    """Calibrate on ``val`` (temperature, class-conditional conformal sets, the OOD gate on the network's
    features with ``train`` as the reference), export to ONNX and write a verified signal bundle."""
    val_logits, val_feats = predict_beats(model, val)
    _, train_feats = predict_beats(model, train)
    ts = TemperatureScaler().fit(val_logits, val.y)
    cp = ConformalClassifier(alpha, "lac", class_conditional=True).fit(ts.predict_proba(val_logits), val.y)
    gate = OODGate("combined", 0.95).fit(train_feats, train.y, val_feats, val_logits)
    n = min(8, len(val))
    waves, rr = val.waves[:n], val.rr[:n]
    with tempfile.TemporaryDirectory() as tmp:  # the bundle folder is written whole, by write_signal_bundle
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, (torch.from_numpy(waves), torch.from_numpy(rr)), onnx_path, ["wave", "rr"],
                    ["logits", "features"])
        return write_signal_bundle(out, onnx_path, gate, name=name, version=version, spec=spec, window=BEAT_WINDOW,
                                   temperature=ts, conformal=cp, selftest={"wave": waves, "rr": rr},
                                   metrics=metrics or {}, training=training or {}, versions=_versions())


def _versions() -> dict[str, str]:
    return {"carelens": __version__, "torch": torch.__version__}


def export_records(model: RecordNet, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                   out: Path, *, spec: LabelSpec, leads: Sequence[str], fs: float, name: str | None = None,
                   version: str = "1", alpha: float = 0.1, recall_floor: float = 0.9,
                   critical_miss_target: float = 0.02, test: tuple[np.ndarray, np.ndarray] | None = None,
                   rule_on: tuple[np.ndarray, np.ndarray, str] | None = None,
                   metrics: dict[str, Any] | None = None, training: dict[str, Any] | None = None) -> Path:
    """Calibrate a recording network on ``val`` as multi-label image models are calibrated (per-condition
    temperatures; decision thresholds meeting ``recall_floor`` on validation for the conditions that can need
    urgent care, F1 for the others; conformal risk control of the share of conditions missed at ``alpha``; the
    decision rule chosen to meet ``critical_miss_target`` at the lowest over-triage, :func:`carelens.steps.
    choose_multilabel_rule`), fit the OOD gate on the network's features (``train`` as the reference), export to
    ONNX and write a verified signal bundle (``input: record``) that ships the rule (``decision``) and its
    validation figures (``metrics.decision_rule``). ``test``: recordings and labels measured as shipped (macro AUC,
    false-negative rate, calibration, critical-miss beside over-triage, the set rule's beside them), into
    ``metrics``. ``rule_on``: (logits, labels, what they are) the decision rule is chosen on instead of ``val``,
    such as :func:`out_of_fold_records`' logits over many more records than one validation fold holds (the rule is
    a threshold on calibrated probabilities, and halves of these records are calibrated and decided as ``val``'s
    are; every record counts as in distribution: the gate is the shipped network's)."""
    if len(spec.classes) != train_y.shape[1] or not spec.multilabel:
        raise ConfigError(f"label spec {spec.name!r} must be multi-label with {train_y.shape[1]} conditions")
    val_logits, val_feats = predict_records(model, val_x)
    _, train_feats = predict_records(model, train_x)
    cal = MultilabelCalibrator(alpha, urgent_recall_floor(spec, recall_floor)).fit(val_logits, val_y)
    gate = OODGate("combined", 0.95).fit(train_feats, ood_classes(train_y), val_feats, val_logits)
    layout = OutputLayout.of(spec)
    on_test = None
    if test is not None:
        test_logits, test_feats = predict_records(model, test[0])
        on_test = (test_logits, layout.ungraded_targets(test[1]), gate.is_in_distribution(test_feats, test_logits))
    if rule_on is None:
        rule_logits, rule_y, what = val_logits, val_y, "validation"
        in_rule = gate.is_in_distribution(val_feats, val_logits)
    else:
        rule_logits, rule_y, what = rule_on
        in_rule = np.ones(len(rule_y), bool)
    rule = choose_multilabel_rule(cal, layout, spec, rule_logits, layout.ungraded_targets(rule_y), in_rule,
                                  severity_floor=DecisionParams().severity_floor, target=critical_miss_target, test=on_test)
    rule["chosen_on"] = f"{what} ({len(rule_y)} records, cross-fitted halves)"
    decision = DecisionParams(critical_threshold=rule["critical_threshold"])
    measured = dict(metrics or {})
    if on_test is not None:
        report = multilabel_report(cal, layout, spec, *on_test, policy=decision.policy())
        measured["test"] = {k: report[k] for k in ("n", "macro_auc", "per_label_auc", "macro_f1", "fnr", "fnr_target",
                                                   "mean_kept", "mean_true", "ece", "ood_pass_rate",
                                                   "critical_miss_rate", "over_triage_rate", "triage_agreement")}
        measured["test"] |= {f"{k}_set_rule": rule["test"][0][k] for k in ("critical_miss_rate", "over_triage_rate")}
    sample = np.ascontiguousarray(val_x[:2])
    with tempfile.TemporaryDirectory() as tmp:  # the bundle folder is written whole, by write_signal_bundle
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, (torch.from_numpy(sample),), onnx_path, ["signal"], ["logits", "features"])
        return write_signal_bundle(out, onnx_path, gate, name=name or spec.name, version=version, spec=spec,
                                   window={"fs": float(fs), "seconds": val_x.shape[2] / fs}, leads=list(leads),
                                   multilabel=cal, selftest={"signal": sample},
                                   metrics={**measured, "decision_rule": rule}, training=training or {},
                                   versions=_versions(), decision=decision)


@torch.no_grad()
def predict_records(model: RecordNet, x: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(logits (n, labels), features (n, d)) for recordings (n, leads, samples), in evaluation mode."""
    model.eval()
    out = [model(torch.from_numpy(x[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate([o[0].numpy() for o in out]), np.concatenate([o[1].numpy() for o in out])


def train_records(x: np.ndarray, y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, *, epochs: int = 40,
                  lr: float = 3e-3, batch: int = 32, seed: int = 0, threads: int | None = None, keep: Keep = "best",
                  progress: Callable[[int], None] | None = None) -> SignalTrainResult[RecordNet]:
    """A multi-label recording classifier: BCE with the per-label positive weights the image trainer uses
    (:func:`positive_weights`); the epoch with the best validation macro AUC is kept (``keep="last"``: the last
    epoch's, the validation figure only recorded). Augmentation: a random circular time shift (a 10-s recording
    starts anywhere in the rhythm) and amplitude scaling."""
    from sklearn.metrics import roc_auc_score

    configure_runtime(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = RecordNet(y.shape[1], leads=x.shape[1])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weights(y), dtype=torch.float32))

    def loss_of(idx: np.ndarray) -> torch.Tensor:
        shifted = np.roll(x[idx], int(rng.integers(0, x.shape[2])), axis=2)
        xb = shifted * rng.uniform(0.8, 1.2, (len(idx), 1, 1)).astype(np.float32)
        logits, _ = model(torch.from_numpy(np.ascontiguousarray(xb)))
        return loss_fn(logits, torch.from_numpy(y[idx].astype(np.float32)))  # type: ignore[no-any-return]

    def score() -> float:
        logits, _ = predict_records(model, val_x)
        return float(np.mean([roc_auc_score(val_y[:, k], logits[:, k]) for k in range(y.shape[1])
                              if 0 < val_y[:, k].sum() < len(val_y)]))

    return _fit(model, len(x), loss_of, score, "val_macro_auc", epochs=epochs, lr=lr, batch=batch, weight_decay=1e-3,
                rng=rng, progress=progress, keep=keep)


def out_of_fold_records(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, epochs: int = 40, seed: int = 0,
                        threads: int | None = None, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Logits (n, labels) for every recording from a network that never saw its group: per group, the recipe of
    :func:`train_records` on the other groups, keeping the last epoch (no record of the held-out group chooses
    anything). What a decision rule is chosen on when one validation fold holds too few urgent records to vouch
    for a small critical-miss rate. ``progress`` advances once per epoch, ``epochs`` times per group."""
    names = np.unique(groups)
    if len(names) < 2:
        raise ConfigError(f"out-of-fold predictions need at least 2 groups of records; got {len(names)}")
    logits = np.zeros(y.shape, np.float32)
    for g in names:
        held = groups == g
        res = train_records(x[~held], y[~held], x[held], y[held], epochs=epochs, seed=seed, threads=threads,
                            keep="last", progress=progress)
        logits[held] = predict_records(res.model, x[held])[0]
    return logits
