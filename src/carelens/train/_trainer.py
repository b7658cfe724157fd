"""The training engine: cached-feature head, then fine-tuning with augmentation, early stopping,
checkpoints that survive an interruption, and honest metrics on validation and test."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from carelens._console import progress_bar
from carelens.data import Dataset, Splits, UnreadableImageWarning
from carelens.errors import ConfigError, DataError
from carelens.models import Classifier, build_classifier
from carelens.preprocess import PreprocessConfig, normalize, resize_image
from carelens.report.metrics import classification_metrics
from carelens.train._augment import augment_batch, build_augment
from carelens.train._config import TrainConfig
from carelens.train._losses import build_loss
from carelens.train._runtime import configure_runtime, device

__all__ = ["LoadedSplit", "RunResult", "load_split", "predict_logits", "train"]


@dataclass
class LoadedSplit:
    images: np.ndarray  # (N, S, S, 3) uint8, resized
    y: np.ndarray  # (N,) int64
    ids: list[str]


@dataclass
class RunResult:
    run_dir: Path
    val: dict[str, Any]
    test: dict[str, Any] | None
    history: list[dict[str, Any]]
    seconds: float


def load_split(ds: Dataset, indices: list[int], pre: PreprocessConfig, class_ids: list[str], desc: str) -> LoadedSplit:
    """Decode and resize a split once into memory; unreadable files are skipped with a warning."""
    images, ys, ids = [], [], []
    index = {c: i for i, c in enumerate(class_ids)}
    with progress_bar(f"loading {desc}", len(indices)) as advance, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreadableImageWarning)
        for i, img in ds.iter_images(indices):
            images.append(resize_image(img, pre))
            ys.append(index[ds[i].label])
            ids.append(ds[i].id)
            advance(1)
    for w in caught:  # re-emit outside the recorder so callers see them
        warnings.warn(str(w.message), UnreadableImageWarning, stacklevel=2)
    if not images:
        raise DataError(f"the {desc} split has no readable images")
    return LoadedSplit(np.stack(images), np.asarray(ys, np.int64), ids)


def _to_tensor(batch_uint8: np.ndarray, pre: PreprocessConfig, dev: torch.device) -> torch.Tensor:
    x = torch.from_numpy(normalize(batch_uint8, pre)).to(dev)
    return x.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict_logits(model: Classifier, images: np.ndarray, pre: PreprocessConfig, batch: int = 64,
                   with_features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    model.eval()
    dev = next(model.parameters()).device
    logits, feats = [], []
    for k in range(0, len(images), batch):
        lo, fe, _ = model.forward_all(_to_tensor(images[k : k + batch], pre, dev))
        logits.append(lo.float().cpu().numpy())
        if with_features:
            feats.append(fe.float().cpu().numpy())
    return np.concatenate(logits), (np.concatenate(feats) if with_features else None)


@torch.inference_mode()
def _features(model: Classifier, images: np.ndarray, pre: PreprocessConfig, desc: str) -> np.ndarray:
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with progress_bar(desc, len(images)) as advance:
        for k in range(0, len(images), 64):
            out.append(model.backbone(_to_tensor(images[k : k + 64], pre, dev)).mean(dim=(2, 3)).cpu())
            advance(min(64, len(images) - k))
    return torch.cat(out).numpy()


def _score(metrics: dict[str, Any], monitor: str, logits: np.ndarray, y: np.ndarray) -> float:
    if monitor == "neg_log_loss":
        return -float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)))
    v = float(metrics[monitor])
    return v if not math.isnan(v) else -1.0


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _sampler_order(y: np.ndarray, balanced: bool, gen: torch.Generator) -> np.ndarray:
    n = len(y)
    if not balanced:
        return torch.randperm(n, generator=gen).numpy()
    counts = np.bincount(y)
    w = torch.tensor(1.0 / counts[y], dtype=torch.double)
    return torch.multinomial(w, n, replacement=True, generator=gen).numpy()


def _set_trainable(model: Classifier, n_stages: int) -> None:
    stages = model.backbone.stages()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    top = stages if n_stages < 0 else stages[len(stages) - n_stages :] if n_stages > 0 else []
    for s in top:
        for p in s.parameters():
            p.requires_grad_(True)
    for p in model.head.parameters():
        p.requires_grad_(True)


def _train_mode(model: Classifier) -> None:
    """Train mode only where parameters learn: frozen BatchNorm keeps its ImageNet statistics."""
    model.eval()
    for m in model.modules():
        if any(p.requires_grad for p in m.parameters(recurse=False)):
            m.train()
    model.head.train()


def train(
    ds: Dataset,
    splits: Splits,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    evaluate_test: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
) -> RunResult:
    """Train a classifier on ``ds`` with ``splits``; everything is written under ``out``.

    Raises:
        ConfigError: before any image is read, for a class with no training example.
    """
    t0 = time.perf_counter()
    run = Path(out)
    class_ids = ds.spec.class_ids if ds.spec else sorted(set(ds.labels))
    train_idx, val_idx, test_idx = (splits.indices(ds, s) for s in ("train", "val", "test"))
    train_counts = Counter(ds[i].label for i in train_idx)
    missing = [c for c in class_ids if train_counts.get(c, 0) == 0]
    if missing:
        raise ConfigError(
            f"class(es) {', '.join(missing)} have no training examples in this split; collect images, merge "
            "them into another class in the label spec, or re-split."
        )
    if not val_idx:
        raise ConfigError("the validation split is empty; model selection needs one (re-split with a val share)")
    if resume and not (run / "last.pt").is_file():
        raise ConfigError(f"--resume: no checkpoint {run / 'last.pt'} to resume from")
    run.mkdir(parents=True, exist_ok=True)

    configure_runtime(config.threads)
    dev = device()
    pre = PreprocessConfig(image_size=config.image_size, resize=config.resize)  # type: ignore[arg-type]
    (run / "config.json").write_text(json.dumps({
        "train": config.to_dict(), "preprocess": pre.to_dict(), "class_ids": class_ids,
        "dataset": {"name": ds.name, "fingerprint": ds.fingerprint(), "n": len(ds), "source": str(ds.root)},
        "spec": ds.spec.to_dict() if ds.spec else None,
    }, indent=1))
    splits.save(run / "splits.json", ds)

    tr = load_split(ds, train_idx, pre, class_ids, "train")
    va = load_split(ds, val_idx, pre, class_ids, "val")
    counts = np.bincount(tr.y, minlength=len(class_ids))

    torch.manual_seed(config.seed)
    model = build_classifier(config.model, len(class_ids), config.image_size, pretrained=config.pretrained,
                             dropout=config.dropout).to(dev)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loss_fn = build_loss(config.imbalance, counts.tolist(), mode=config.class_weights, beta=config.effective_beta,
                         gamma=config.focal_gamma, label_smoothing=config.label_smoothing).to(dev)
    balanced = "balanced_sampler" in config.imbalance
    history: list[dict[str, Any]] = []
    best = -math.inf
    state: dict[str, Any] = {"phase": "head", "epoch": 0}
    ck: dict[str, Any] = {}  # the checkpoint resumed from, read once

    if resume:
        ck = torch.load(run / "last.pt", map_location=dev, weights_only=False)
        model.load_state_dict(ck["model"])
        history, best, state = ck["history"], ck["best"], ck["state"]

    def evaluate() -> tuple[dict[str, Any], np.ndarray]:
        logits, _ = predict_logits(model, va.images, pre)
        return classification_metrics(va.y, _softmax(logits), class_ids), logits

    def checkpoint(extra: dict[str, Any]) -> None:
        torch.save({"model": model.state_dict(), "history": history, "best": best, "state": state, **extra},
                   run / "last.pt.tmp")
        (run / "last.pt.tmp").replace(run / "last.pt")  # atomic: a kill never leaves half a file

    # -- phase 1: frozen backbone, head on cached pooled features --------------------------------
    if config.pretrained and config.head_epochs > 0 and state["phase"] == "head":
        ftr = torch.from_numpy(_features(model, tr.images, pre, "features (train)"))
        fva = torch.from_numpy(_features(model, va.images, pre, "features (val)"))
        ytr = torch.from_numpy(tr.y)
        head = model.head
        opt = torch.optim.AdamW(head.parameters(), lr=config.lr_head, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.head_epochs)
        gen = torch.Generator().manual_seed(config.seed)
        best_head, best_state = -math.inf, None
        for ep in range(config.head_epochs):
            head.train()
            order = _sampler_order(tr.y, balanced, gen)
            total = 0.0
            for k in range(0, len(order), 256):
                b = torch.from_numpy(order[k : k + 256])
                loss = loss_fn(head(ftr[b].to(dev)), ytr[b].to(dev))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            sched.step()
            head.eval()
            with torch.inference_mode():
                lv = head(fva.to(dev)).cpu().numpy()
            m = classification_metrics(va.y, _softmax(lv), class_ids)
            score = _score(m, config.monitor, lv, va.y)
            history.append({"phase": "head", "epoch": ep + 1, "train_loss": total / len(order),
                            "val_balanced_accuracy": m["balanced_accuracy"], "val_accuracy": m["accuracy"],
                            "val_macro_auc": m["macro_auc"], "score": score})
            if score > best_head:
                best_head, best_state = score, {k: v.clone() for k, v in head.state_dict().items()}
        if best_state is not None:
            head.load_state_dict(best_state)
        best = best_head
        torch.save({"model": model.state_dict(), "score": best}, run / "best.pt")
        state = {"phase": "finetune", "epoch": 0}
        checkpoint({})
    elif state["phase"] == "head":
        state = {"phase": "finetune", "epoch": 0}

    # -- phase 2: fine-tune the top stages with augmentation -------------------------------------
    if config.finetune_epochs > 0:
        _set_trainable(model, config.unfreeze_stages if config.pretrained else -1)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.lr_finetune, weight_decay=config.weight_decay)
        steps = math.ceil(len(tr.y) / config.batch_size)
        sched: Any = (
            torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr_finetune, total_steps=config.finetune_epochs * steps,
                                                pct_start=0.15, anneal_strategy="cos")
            if config.schedule == "cosine"
            else torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.3, patience=1)
        )
        if "opt" in ck:  # resumed inside phase 2
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
        stale = 0  # fine-tune epochs since the last improvement, carried over a resume
        for h in history:
            if h["phase"] == "finetune":
                stale = 0 if h.get("improved") else stale + 1
        for ep in range(state["epoch"], config.finetune_epochs):
            if stale >= config.patience > 0:
                break
            epoch_seed = config.seed * 1000 + ep  # the same epoch gives the same batches after a resume
            torch.manual_seed(epoch_seed)
            gen = torch.Generator().manual_seed(epoch_seed)
            aug = build_augment(config.augment, config.image_size, epoch_seed)
            order = _sampler_order(tr.y, balanced, gen)
            _train_mode(model)
            total = 0.0
            with progress_bar(f"fine-tune epoch {ep + 1}/{config.finetune_epochs}", len(order)) as advance:
                for k in range(0, len(order), config.batch_size):
                    b = order[k : k + config.batch_size]
                    if len(b) < 2:
                        continue  # BatchNorm needs 2
                    x = _to_tensor(augment_batch(aug, tr.images[b]), pre, dev)
                    loss = loss_fn(model(x), torch.from_numpy(tr.y[b]).to(dev))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if config.schedule == "cosine":
                        sched.step()
                    total += loss.item() * len(b)
                    advance(len(b))
            m, lv = evaluate()
            score = _score(m, config.monitor, lv, va.y)
            if config.schedule == "plateau":
                sched.step(score)
            improved = score > best
            history.append({"phase": "finetune", "epoch": ep + 1, "train_loss": total / len(order),
                            "val_balanced_accuracy": m["balanced_accuracy"], "val_accuracy": m["accuracy"],
                            "val_macro_auc": m["macro_auc"], "score": score, "improved": improved,
                            "lr": opt.param_groups[0]["lr"]})
            if improved:
                best = score
                torch.save({"model": model.state_dict(), "score": best}, run / "best.pt")
            stale = 0 if improved else stale + 1
            state = {"phase": "finetune", "epoch": ep + 1}
            checkpoint({"opt": opt.state_dict(), "sched": sched.state_dict()})
            if on_epoch_end is not None:
                on_epoch_end(ep + 1)

    # -- final: best checkpoint, metrics on val and (once) test ----------------------------------
    model.load_state_dict(torch.load(run / "best.pt", map_location=dev, weights_only=False)["model"])
    val_logits, val_feats = predict_logits(model, va.images, pre, with_features=True)
    val_m = classification_metrics(va.y, _softmax(val_logits), class_ids)
    # train features (no augmentation) model the in-distribution data for the OOD gate
    train_logits, train_feats = predict_logits(model, tr.images, pre, with_features=True)
    arrays: dict[str, Any] = {"val_logits": val_logits, "val_features": val_feats, "val_y": va.y,
                              "val_ids": np.asarray(va.ids), "train_logits": train_logits,
                              "train_features": train_feats, "train_y": tr.y}
    test_m = None
    if evaluate_test and test_idx:
        te = load_split(ds, test_idx, pre, class_ids, "test")
        tl, tf = predict_logits(model, te.images, pre, with_features=True)
        test_m = classification_metrics(te.y, _softmax(tl), class_ids)
        arrays.update(test_logits=tl, test_features=tf, test_y=te.y, test_ids=np.asarray(te.ids))
    np.savez_compressed(run / "predictions.npz", **arrays)
    seconds = time.perf_counter() - t0
    (run / "metrics.json").write_text(json.dumps({"val": val_m, "test": test_m, "seconds": round(seconds, 1),
                                                  "history": history}, indent=1))
    _plot_curves(history, run / "curves.png")
    return RunResult(run, val_m, test_m, history, seconds)


def _plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = list(range(1, len(history) + 1))
    axes[0].plot(x, [h["train_loss"] for h in history], label="train loss")
    axes[0].set_xlabel("epoch (head, then fine-tune)")
    axes[0].legend()
    for key, lab in (("val_balanced_accuracy", "val balanced acc"), ("val_accuracy", "val acc"),
                     ("val_macro_auc", "val macro AUC")):
        axes[1].plot(x, [h[key] for h in history], label=lab)
    n_head = sum(1 for h in history if h["phase"] == "head")
    for ax in axes:
        if 0 < n_head < len(history):
            ax.axvline(n_head + 0.5, color="grey", ls=":")
    axes[1].set_ylim(0, 1)
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
