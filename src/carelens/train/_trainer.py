"""The training engine: cached-feature head, then fine-tuning with augmentation, early stopping,
checkpoints that survive an interruption, and honest metrics on validation and test."""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from carelens.bundle import make_session
from carelens.config import TrainConfig
from carelens.console import err_console, notice, progress_bar
from carelens.data import Dataset, Splits, UnreadableImageWarning
from carelens.errors import ConfigError, DataError
from carelens.labels import spec_from_labels
from carelens.models import GRAPH_OUTPUTS, Classifier, ShippedGraph, build_classifier, export_onnx
from carelens.plots import curves_png
from carelens.preprocess import PreprocessConfig, normalize, resize_image
from carelens.settings import threads_per_process
from carelens.steps import DatasetRef, Predictions, Run, RunConfig
from carelens.train._augment import augment_batch, build_augment
from carelens.train._distributed import Dist, setup, teardown
from carelens.train._runtime import autocast, configure_runtime, describe
from carelens.train._task import TrainTask, task_for
from carelens.train._tracking import Tracker

__all__ = ["ONNX_MIN_IMAGES", "LoadedSplit", "RunResult", "load_split", "predict_logits", "train"]


@dataclass
class LoadedSplit:
    images: np.ndarray  # (N, S, S, 3) uint8, resized
    y: np.ndarray  # (N,) int64 class indices, or (N, 2K) multi-label targets (carelens.tasks)
    ids: list[str]


@dataclass
class RunResult:
    run_dir: Path
    val: dict[str, Any]
    test: dict[str, Any] | None
    history: list[dict[str, Any]]
    seconds: float


def load_split(ds: Dataset, indices: list[int], pre: PreprocessConfig, task: TrainTask, desc: str) -> LoadedSplit:
    """Decode and resize a split once into memory; unreadable files are skipped with a warning."""
    images: list[np.ndarray] = []
    ys: list[int | list[int]] = []
    ids: list[str] = []
    with progress_bar(f"loading {desc}", len(indices)) as advance, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreadableImageWarning)
        for i, img in ds.iter_images(indices):
            images.append(resize_image(img, pre))
            ys.append(task.target(ds[i]))
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


# Inference passes over at least this many images run in ONNX Runtime on the CPU, through the graph a bundle ships
# exported from the current weights: the same outputs (logits within 1e-5) several times faster than eager PyTorch
# (EfficientNet-Lite0 at 128 px, batch 64, AVX2 AMD EPYC, 2 threads: 125 -> 288 images/s in `python
# bench/train_inference.py`, the export and session 0.8 s; the `make demo` training's features pass 61 -> 18 s on
# 5,957 images). Below it the export costs more than it saves.
ONNX_MIN_IMAGES = 256
# the one-cycle schedule's warm-up: the share of fine-tune steps over which the learning rate rises to its peak
WARMUP_SHARE = 0.15


@torch.inference_mode()
def predict_logits(model: Classifier, images: np.ndarray, pre: PreprocessConfig, batch: int = 64,
                   with_features: bool = False, desc: str | None = None, engine: str = "auto"
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, the gate's features or None) of ``images`` (N, S, S, 3) uint8; ``desc``: shown as a progress bar.
    ``engine``: "torch", "onnx" (ONNX Runtime on the CPU) or "auto" (ONNX Runtime for a model on the CPU from
    :data:`ONNX_MIN_IMAGES` images, else PyTorch)."""
    if engine not in ("auto", "torch", "onnx"):
        raise ConfigError(f"engine {engine!r}: choose auto, torch or onnx")
    model.eval()
    dev = next(model.parameters()).device
    onnx = engine == "onnx" or (engine == "auto" and dev.type == "cpu" and len(images) >= ONNX_MIN_IMAGES)
    names = ["logits", "features"] if with_features else ["logits"]
    forward = _onnx_forward(model, pre, names) if onnx else _torch_forward(model, pre, dev, names)
    logits, feats = [], []
    with progress_bar(desc, len(images)) if desc else nullcontext(lambda n: None) as advance:
        for k in range(0, len(images), batch):
            outs = forward(images[k : k + batch])
            logits.append(outs[0])
            if with_features:
                feats.append(outs[1])
            advance(len(outs[0]))
    return np.concatenate(logits), (np.concatenate(feats) if with_features else None)


Forward = Callable[[np.ndarray], list[np.ndarray]]  # uint8 images -> the named outputs (logits[, features])


def _torch_forward(model: Classifier, pre: PreprocessConfig, dev: torch.device, names: list[str]) -> Forward:
    def forward(images: np.ndarray) -> list[np.ndarray]:
        with autocast(dev):
            lo, fe, _ = model.forward_all(_to_tensor(images, pre, dev))
        outs = {"logits": lo, "features": fe}
        return [outs[n].float().cpu().numpy() for n in names]
    return forward


def _onnx_forward(model: Classifier, pre: PreprocessConfig, names: list[str]) -> Forward:
    buf = io.BytesIO()
    s = pre.image_size
    export_onnx(ShippedGraph([model]), (torch.zeros(2, 3, s, s, device=next(model.parameters()).device),), buf,
                ["input"], GRAPH_OUTPUTS)
    session = make_session(buf.getvalue(), threads=torch.get_num_threads())

    def forward(images: np.ndarray) -> list[np.ndarray]:
        return session.run(names, {"input": normalize(images, pre)})  # type: ignore[no-any-return]
    return forward


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


@dataclass
class _Fit:
    """What both training phases work on, and what survives an interruption (history, best score, phase)."""

    model: Classifier
    loss_fn: nn.Module
    config: TrainConfig
    run: Run
    tr: LoadedSplit
    va: LoadedSplit
    task: TrainTask
    dev: torch.device
    tr_early: LoadedSplit | None = None  # progressive resizing: the training images at the early size
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = -math.inf
    state: dict[str, Any] = field(default_factory=lambda: {"phase": "head", "epoch": 0})
    resumed: dict[str, Any] = field(default_factory=dict)  # the checkpoint resumed from, read once
    tracker: Tracker | None = None
    dist: Dist = field(default_factory=Dist)  # with torchrun: this process among several (only rank 0 writes)

    def record(self, row: dict[str, Any]) -> None:
        """One epoch's measures: into the history (and its checkpoint) and to the tracker, as it happens."""
        self.history.append(row)
        if self.tracker is not None:  # process 0's only
            self.tracker.log_epoch(len(self.history), row)

    @property
    def pre(self) -> PreprocessConfig:
        return self.config.preprocess

    def validate(self, model: Classifier | None = None) -> tuple[dict[str, Any], np.ndarray]:
        logits, _ = predict_logits(model or self.model, self.va.images, self.pre)
        return self.task.metrics(self.va.y, logits), logits

    def save_best(self, model: Classifier | None = None) -> None:
        """Keep ``model``'s weights (the trained model's, or their moving average) as the best so far."""
        if self.dist.main:
            torch.save({"model": (model or self.model).state_dict(), "score": self.best}, self.run.best_checkpoint)
        self.dist.barrier()  # the others may read it next

    def checkpoint(self, extra: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        tmp = self.run.last_checkpoint.with_suffix(".pt.tmp")
        torch.save({"model": self.model.state_dict(), "history": self.history, "best": self.best, "state": self.state,
                    **extra}, tmp)
        tmp.replace(self.run.last_checkpoint)  # atomic: a kill never leaves half a file


def train(
    ds: Dataset,
    splits: Splits,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    evaluate_test: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    tracker: Tracker | None = None,
) -> RunResult:
    """Train a classifier on ``ds`` with ``splits``; everything is written into the run folder ``out``.

    Phase 1 trains the head on cached pooled features of the frozen backbone; phase 2 fine-tunes the top
    stages with augmentation. Then the best checkpoint is measured on validation and (once) test.

    Under torchrun (several processes: :mod:`carelens.train._distributed`) phase 2 runs as DistributedDataParallel;
    process 0 writes the run folder and measures; the others return its training history with empty metrics.

    Raises:
        ConfigError: before any image is read, for a class with no training example.
    """
    t0 = time.perf_counter()
    run = Run(out)
    class_ids = ds.spec.class_ids if ds.spec else sorted(set(ds.labels))
    if ds.spec is None:  # the labels are the class ids: fail now, not at export after the training
        spec_from_labels(ds.name, class_ids)
    if ds.multilabel and (ds.spec is None or not ds.spec.multilabel):
        raise ConfigError(f"{ds.name} is multi-label: train it with a multi-label spec (task: multilabel)")
    task = task_for(ds.spec, class_ids, config)
    unseen = _check_inputs(ds, splits, task, run, resume)
    dist, dev = setup()
    if not dist.main:
        err_console.quiet = True  # one set of progress bars and messages: process 0's
    if unseen:  # trained, but chosen and calibrated blind to them
        notice(f"class(es) {', '.join(unseen)} have no validation examples: the model is chosen, and later "
               "calibrated, without seeing how it does on them; collect more (the audit says how many) or merge them "
               "in the label spec")
    configure_runtime(config.threads or threads_per_process(dist.world))
    err_console.print(describe(dev, dist.world))
    if dist.main:
        run.create()
        if not resume:
            run.clear_calibration()  # a new model: the calibration of the one it replaces would be stale
        run.write_config(RunConfig(
            train=config, class_ids=class_ids, spec=ds.spec,
            dataset=DatasetRef(name=ds.name, fingerprint=ds.fingerprint(), n=len(ds), source=str(ds.root))))
        run.write_splits(splits, ds)
    fit = _start(ds, splits, config, run, task, resume, class_ids, dev)
    fit.dist = dist
    fit.tracker = tracker if dist.main else None
    if fit.tracker is not None:
        fit.tracker.start(run.path.name, {"train": config.to_dict(), "dataset": ds.name, "n": len(ds), "task":
                                      "multilabel" if ds.multilabel else "multiclass", "split": splits.strategy})
    if config.pretrained and config.head_epochs > 0 and fit.state["phase"] == "head":
        _train_head(fit)
    elif fit.state["phase"] == "head":
        fit.state = {"phase": "finetune", "epoch": 0}
    if config.finetune_epochs > 0:
        _finetune(fit, on_epoch_end)
    if not dist.main:
        teardown(dist)
        return RunResult(run.path, {}, None, fit.history, time.perf_counter() - t0)
    val_m, test_m = _finish(fit, ds, splits.indices(ds, "test") if evaluate_test else [])
    teardown(dist)
    seconds = time.perf_counter() - t0
    run.write_metrics({"val": val_m, "test": test_m, "seconds": round(seconds, 1), "history": fit.history})
    if fit.history:
        run.write_curves(curves_png(fit.history))
    if tracker is not None:
        tracker.finish({"val": _summary(val_m), "test": _summary(test_m or {}), "seconds": seconds},
                       [run.file(n) for n in (Run.CONFIG, Run.METRICS, Run.CURVES, Run.SPLITS)])
    return RunResult(run.path, val_m, test_m, fit.history, seconds)


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics dict (for a tracker): no per-class tables or matrices."""
    return {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _check_inputs(ds: Dataset, splits: Splits, task: TrainTask, run: Run, resume: bool) -> list[str]:
    """ConfigError for what makes training impossible; the classes the validation split lacks."""
    missing = task.missing_in([ds[i] for i in splits.indices(ds, "train")])
    if missing:
        raise ConfigError(
            f"class(es) {', '.join(missing)} have no training examples in this split; collect images, merge "
            "them into another class in the label spec, or re-split."
        )
    if not splits.indices(ds, "val"):
        raise ConfigError("the validation split is empty; model selection needs one (re-split with a val share)")
    if resume and not run.last_checkpoint.is_file():
        raise ConfigError(f"--resume: no checkpoint {run.last_checkpoint} to resume from")
    return task.missing_in([ds[i] for i in splits.indices(ds, "val")])


def _start(ds: Dataset, splits: Splits, config: TrainConfig, run: Run, task: TrainTask, resume: bool,
           class_ids: list[str], dev: torch.device) -> _Fit:
    """Decode the train and val splits once, build the model and loss (seeded), or resume from last.pt."""
    pre = config.preprocess
    tr = load_split(ds, splits.indices(ds, "train"), pre, task, "train")
    va = load_split(ds, splits.indices(ds, "val"), pre, task, "val")
    early = None
    if config.early_image_size:  # progressive resizing: the same images, decoded once more at the early size
        early = load_split(ds, splits.indices(ds, "train"), replace(pre, image_size=config.early_image_size), task,
                           f"train at {config.early_image_size} px")
        if len(early.y) != len(tr.y):
            raise DataError(f"the training split read {len(tr.y)} images at {config.image_size} px but {len(early.y)} "
                            f"at {config.early_image_size} px: files changed while training started; start again")
    torch.manual_seed(config.seed)
    n_out = len(class_ids)
    model = build_classifier(config.model, n_out, config.image_size, pretrained=config.pretrained,
                             dropout=config.dropout, layout=task.layout, width=config.width).to(dev)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loss_fn = task.loss(tr.y).to(dev)
    fit = _Fit(model, loss_fn, config, run, tr, va, task, dev, tr_early=early)
    if resume:
        ck = torch.load(run.last_checkpoint, map_location=dev, weights_only=True)
        model.load_state_dict(ck["model"])
        fit.history, fit.best, fit.state, fit.resumed = ck["history"], ck["best"], ck["state"], ck
    return fit


def _train_head(fit: _Fit) -> None:
    """Phase 1: the backbone frozen, its pooled features cached once, the head trained on them."""
    cfg = fit.config
    c = fit.model.backbone.out_channels  # the gate's features begin with the pooled ones, the head's input
    ftr, fva = (torch.from_numpy(predict_logits(fit.model, s.images, fit.pre, with_features=True,
                                                desc=f"features ({name})")[1][:, :c].copy())  # type: ignore[index]
                for s, name in ((fit.tr, "train"), (fit.va, "val")))
    ytr = torch.from_numpy(fit.tr.y)
    head = fit.model.head
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr_head, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.head_epochs)
    gen = torch.Generator().manual_seed(cfg.seed)
    best_head, best_state = -math.inf, None
    with progress_bar("head on cached features (epochs)", cfg.head_epochs) as advance:
        for ep in range(cfg.head_epochs):
            _head_epoch(fit, ep, ftr, fva, ytr, opt, sched, gen)
            advance(1)
            if fit.history[-1]["score"] > best_head:
                best_head, best_state = fit.history[-1]["score"], {k: v.clone() for k, v in head.state_dict().items()}
    if best_state is not None:
        head.load_state_dict(best_state)
    fit.best = best_head
    fit.save_best()
    fit.state = {"phase": "finetune", "epoch": 0}
    fit.checkpoint({})


def _head_epoch(fit: _Fit, ep: int, ftr: torch.Tensor, fva: torch.Tensor, ytr: torch.Tensor,
                opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator) -> None:
    """One pass of the head over the cached training features, then its validation score (recorded)."""
    head, dev = fit.model.head, fit.dev
    head.train()
    order = fit.task.order(fit.tr.y, gen)
    total = 0.0
    for k in range(0, len(order), 256):
        b = torch.from_numpy(order[k : k + 256])
        loss = fit.loss_fn(head(ftr[b].to(dev)), ytr[b].to(dev))
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    sched.step()
    head.eval()
    with torch.inference_mode():
        lv = head(fva.to(dev)).cpu().numpy()
    m = fit.task.metrics(fit.va.y, lv)
    score = fit.task.score(m, fit.va.y, lv)
    fit.record({"phase": "head", "epoch": ep + 1, "train_loss": total / len(order),
                **fit.task.summary(m), "score": score})


def _finetune(fit: _Fit, on_epoch_end: Callable[[int], None] | None) -> None:
    """Phase 2: fine-tune the top stages with augmentation; early stopping on the monitored score."""
    cfg, model = fit.config, fit.model
    _set_trainable(model, cfg.unfreeze_stages if cfg.pretrained else -1)
    net: nn.Module = model
    if fit.dist.world > 1:  # after the trainable set is fixed: DDP registers its hooks on those parameters
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[fit.dev] if fit.dev.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr_finetune, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(fit.tr.y) / cfg.batch_size)
    sched: Any = (
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr_finetune, total_steps=cfg.finetune_epochs * steps,
                                            pct_start=WARMUP_SHARE, anneal_strategy="cos")
        if cfg.schedule == "cosine"
        else torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.3, patience=1)
    )
    ema = _ema(model, cfg.ema)
    if "opt" in fit.resumed:  # resumed inside phase 2
        opt.load_state_dict(fit.resumed["opt"])
        sched.load_state_dict(fit.resumed["sched"])
        if ema is not None and "ema" in fit.resumed:
            ema.load_state_dict(fit.resumed["ema"])
    judged = model if ema is None else cast(Classifier, ema.module)  # the weights validated and kept
    stale = 0  # fine-tune epochs since the last improvement, carried over a resume
    for h in fit.history:
        if h["phase"] == "finetune":
            stale = 0 if h.get("improved") else stale + _counts_for_patience(cfg, h["epoch"] - 1)
    for ep in range(fit.state["epoch"], cfg.finetune_epochs):
        if stale >= cfg.patience > 0:
            best_ep = max((h["epoch"] for h in fit.history if h["phase"] == "finetune" and h.get("improved")), default=0)
            err_console.print(f"fine-tuning stopped early after epoch {ep} of {cfg.finetune_epochs}: the validation "
                              f"score has not improved for {stale} epoch{'s' * (stale != 1)} (patience {cfg.patience}); keeping "
                              + (f"fine-tune epoch {best_ep}'s weights" if best_ep else "the head phase's weights"))
            break
        total, n = _finetune_epoch(fit, net, opt, sched, ep, ema)
        m, lv = fit.validate(judged)
        score = fit.task.score(m, fit.va.y, lv)
        if cfg.schedule == "plateau":
            sched.step(score)
        improved = score > fit.best
        fit.record({"phase": "finetune", "epoch": ep + 1, "train_loss": total / n,
                    **fit.task.summary(m), "score": score, "improved": improved, "lr": opt.param_groups[0]["lr"]}
                   | ({"image_size": cfg.epoch_image_size(ep)} if cfg.early_image_size else {}))
        if improved:
            fit.best = score
            fit.save_best(judged)
        stale = 0 if improved else stale + _counts_for_patience(cfg, ep)
        fit.state = {"phase": "finetune", "epoch": ep + 1}
        fit.checkpoint({"opt": opt.state_dict(), "sched": sched.state_dict()}
                       | ({} if ema is None else {"ema": ema.state_dict()}))
        if on_epoch_end is not None:
            on_epoch_end(ep + 1)


def _counts_for_patience(cfg: TrainConfig, epoch: int) -> bool:
    """Whether fine-tune epoch ``epoch`` (0-based) counts towards early stopping. Under the one-cycle schedule the
    epochs that start before the learning rate peaks do not: their score is expected to dip below the head's (on an
    NVIDIA H200 a 12-epoch run of the HAM10000 recipe at 224 px stopped after its first 3 epochs, warm-up and peak,
    keeping the head's weights, while the same recipe on another seed improved until epoch 8)."""
    return cfg.schedule != "cosine" or epoch >= math.ceil(WARMUP_SHARE * cfg.finetune_epochs)


def _ema(model: Classifier, decay: float) -> AveragedModel | None:
    """The exponential moving average of ``model``'s weights and BatchNorm statistics, or None when off."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)  # type: ignore[no-untyped-call]


def _finetune_epoch(fit: _Fit, net: nn.Module, opt: torch.optim.Optimizer, sched: Any, ep: int,
                    ema: AveragedModel | None = None) -> tuple[float, int]:
    """One augmented pass over the training split; (summed loss, examples in the order). With several processes
    each takes its share of every global batch (the same order everywhere: the imbalance strategy is kept).
    With mixup, each batch is blended with a shuffled copy of itself and the loss with it; with ``ema``, the
    average is updated after every step."""
    cfg = fit.config
    epoch_seed = cfg.seed * 1000 + ep  # the same epoch gives the same batches after a resume
    torch.manual_seed(epoch_seed)
    gen = torch.Generator().manual_seed(epoch_seed)
    size = cfg.epoch_image_size(ep)
    split = fit.tr_early if size != cfg.image_size and fit.tr_early is not None else fit.tr
    aug = build_augment(cfg.augment, size, epoch_seed)
    mix = np.random.default_rng(epoch_seed)
    order = fit.task.order(fit.tr.y, gen)
    _train_mode(fit.model)
    total = 0.0
    d = fit.dist
    at = f" at {size} px" if cfg.early_image_size else ""
    with progress_bar(f"fine-tune epoch {ep + 1}/{cfg.finetune_epochs}{at}", len(order)) as advance:
        for k in range(0, len(order), cfg.batch_size):
            whole = order[k : k + cfg.batch_size]
            if len(whole) < 2 * d.world:
                continue  # BatchNorm needs 2 per process (the same decision in every process)
            b = whole[d.rank :: d.world]
            x = _to_tensor(augment_batch(aug, split.images[b]), fit.pre, fit.dev)  # the normalisation is size-free
            y = torch.from_numpy(fit.tr.y[b]).to(fit.dev)
            lam, perm = 1.0, None
            if cfg.mixup > 0:
                lam = float(mix.beta(cfg.mixup, cfg.mixup))
                perm = torch.from_numpy(mix.permutation(len(b))).to(fit.dev)
                x = lam * x + (1 - lam) * x[perm]
            with autocast(fit.dev):
                out = net(x)
            out = out.float()  # the loss in float32 (under bf16 autocast the forward pass is bfloat16)
            loss = fit.loss_fn(out, y)
            if perm is not None:
                loss = lam * loss + (1 - lam) * fit.loss_fn(out, y[perm])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(fit.model)
            if cfg.schedule == "cosine":
                sched.step()
            total += loss.item() * len(b)
            advance(len(whole))
    return d.sum(total), len(order)


def _finish(fit: _Fit, ds: Dataset, test_idx: list[int]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Reload the best checkpoint; metrics on val and (once) test; predictions.npz for the calibrate step."""
    model, pre = fit.model, fit.pre
    model.load_state_dict(torch.load(fit.run.best_checkpoint, map_location=fit.dev, weights_only=True)["model"])
    val_logits, val_feats = predict_logits(model, fit.va.images, pre, with_features=True, desc="best model's outputs: val")
    val_m = fit.task.metrics(fit.va.y, val_logits)
    # train features (no augmentation) model the in-distribution data for the OOD gate
    train_logits, train_feats = predict_logits(model, fit.tr.images, pre, with_features=True,
                                               desc="best model's outputs: train")
    test: dict[str, Any] = {}
    test_m = None
    if test_idx:
        te = load_split(ds, test_idx, pre, fit.task, "test")
        tl, tf = predict_logits(model, te.images, pre, with_features=True, desc="best model's outputs: test")
        test_m = fit.task.metrics(te.y, tl)
        test = dict(test_logits=tl, test_features=tf, test_y=te.y, test_ids=np.asarray(te.ids))
    fit.run.write_predictions(Predictions(
        train_logits=train_logits, train_features=train_feats, train_y=fit.tr.y,  # type: ignore[arg-type]
        val_logits=val_logits, val_features=val_feats, val_y=fit.va.y, val_ids=np.asarray(fit.va.ids),  # type: ignore[arg-type]
        **test))
    return val_m, test_m
