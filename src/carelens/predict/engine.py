"""The inference engine: decode -> the one preprocessing -> ONNX Runtime -> calibration -> decision.

Imports no torch. Batches for throughput; one bad file never stops a run.
"""

from __future__ import annotations

import csv
import io
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import numpy as np
from PIL import Image
from threadpoolctl import ThreadpoolController

from carelens.bundle import Bundle, Contribution
from carelens.data import IMAGE_SUFFIXES, read_image, read_manifest
from carelens.errors import ConfigError, DataError, FactsError, ImageReadError
from carelens.metrics import decisions
from carelens.policy import Assessment, DecisionPolicy, decide, decide_multilabel, decide_with_facts
from carelens.preprocess import preprocess_batch

T = TypeVar("T")
R = TypeVar("R")

_BLAS: ThreadpoolController | None = None


def _one_blas_thread() -> Any:
    """A context limiting BLAS to one thread (threadpoolctl; the library scan happens once)."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")

__all__ = ["HEATMAP_MAX_SIDE", "Engine", "Inference", "Result", "capped_size", "collect_inputs", "overlay_heatmap",
           "write_results"]


@dataclass
class Inference:
    logits: np.ndarray  # (n, k)
    features: np.ndarray  # (n, C) pooled
    fmap: np.ndarray | None  # (n, C, h, w); None: the model gives no feature map (an imported one)
    proba: np.ndarray  # (n, k) calibrated (multi-label: per condition)
    in_set: np.ndarray  # (n, k) bool, conformal set (multi-label: conditions kept by risk control)
    ood_raw: np.ndarray  # (n,) combined OOD score, higher = more unusual
    ood_p: np.ndarray  # (n,) in-distribution p-value
    in_distribution: np.ndarray  # (n,) bool
    present: np.ndarray | None = None  # multi-label: (n, K) bool, above each condition's threshold
    severity: list[np.ndarray | None] | None = None  # multi-label: per condition (n, levels) or None


@dataclass
class Result:
    input: str
    assessment: Assessment | None = None
    error: str | None = None
    heatmap: np.ndarray | None = None  # (H, W) in [0, 1], the input's size
    finding_heatmaps: dict[str, np.ndarray] | None = None  # multi-label: one per condition present
    contributions: list[Contribution] | None = None  # clinical (tabular) models: each input's share of the risk

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"input": self.input}
        if self.assessment is not None:
            d["assessment"] = self.assessment.model_dump(mode="json")
        if self.contributions is not None:
            d["contributions"] = [c.model_dump(mode="json") for c in self.contributions]
        if self.error is not None:
            d["error"] = self.error
        return d


class Engine:
    def __init__(self, bundle: Bundle, policy: DecisionPolicy | None = None, batch_size: int = 8,
                 lanes: int = 1) -> None:
        """``lanes``: batches of a stream (:meth:`predict_items`) computed at once, each decoded, run and decided in
        its own thread; for a bundle loaded with ``threads`` = cores / lanes (:func:`carelens.settings.
        threads_per_process`). Two lanes of one ONNX Runtime thread scored 331 HAM10000 images/s on 2 cores against
        267 for one lane of two threads (int8, 224 px, batches of 32; `python bench/inference.py inference_int8`): one
        batch decodes while the other is in ONNX Runtime, which releases the GIL, and one thread per run wastes nothing
        on synchronisation."""
        if lanes < 1:
            raise ConfigError(f"lanes must be at least 1, got {lanes}")
        self.bundle = bundle
        self.policy = policy or bundle.policy()  # the settings the bundle ships, unless the caller overrides them
        self.batch_size = batch_size
        self.lanes = lanes
        self.ref = bundle.ref
        self.coverage = 1.0 - bundle.alpha

    def infer(self, images: list[np.ndarray], fmap: bool = True) -> Inference:
        """Every number the bundle computes for a batch of decoded uint8 images (any size); ``fmap=False``: no feature
        map (no heatmap will be drawn from this batch)."""
        b = self.bundle
        batch = preprocess_batch(images, b.preprocess)
        logits, feats, maps = b.run(batch, fmap=fmap)
        if b.multilabel is not None and b.layout is not None:
            return self._infer_multilabel(logits, feats, maps)
        assert b.conformal is not None  # a multiclass bundle has one
        with _one_blas_thread():  # small matrix-vector work: BLAS threads would only fight ONNX Runtime's
            proba = b.temperature.predict_proba(logits)
            ood = b.ood.score(feats, logits)  # once; p-value and verdict derive from it
        return Inference(
            logits=logits, features=feats, fmap=maps, proba=proba, in_set=b.conformal.predict_set(proba),
            ood_raw=ood, ood_p=b.ood.p_value_of(ood), in_distribution=ood <= b.ood.threshold_,
        )

    def _infer_multilabel(self, logits: np.ndarray, feats: np.ndarray, fmap: np.ndarray | None) -> Inference:
        b = self.bundle
        assert b.multilabel is not None and b.layout is not None
        with _one_blas_thread():
            cond = b.layout.condition_logits(logits)
            proba = b.multilabel.predict_proba(cond)
            ood = b.ood.score(feats, cond)
        return Inference(logits=logits, features=feats, fmap=fmap, proba=proba, in_set=b.multilabel.kept(proba),
                         ood_raw=ood, ood_p=b.ood.p_value_of(ood), in_distribution=ood <= b.ood.threshold_,
                         present=b.multilabel.present(proba), severity=b.layout.severity_proba(logits))

    def check_facts(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Validated clinical facts for this model (ConfigError naming what is accepted)."""
        if self.bundle.facts is None:
            raise FactsError(f"model {self.bundle.name} was trained without clinical facts; send the image alone")
        return self.bundle.facts.check(facts)

    def decide(self, inf: Inference, n: int, facts: Mapping[str, Any] | None = None) -> Assessment:
        """The assessment of image ``n``, with clinical facts fused in (checked: a model trained without facts,
        an unknown name or a value out of range is a ConfigError); see :func:`decide_with_facts`."""
        common = dict(spec=self.bundle.labels, model=self.ref, coverage=self.coverage, policy=self.policy,
                      in_distribution=bool(inf.in_distribution[n]), ood_score=float(inf.ood_p[n]))
        if inf.present is not None and inf.severity is not None:
            if facts:
                raise FactsError(f"model {self.bundle.name} is multi-label and fuses no clinical facts; send the image alone")
            return decide_multilabel(inf.proba[n], inf.present[n], inf.in_set[n],
                                     [s[n] if s is not None else None for s in inf.severity],
                                     **common)  # type: ignore[arg-type]
        if not facts:
            return decide(inf.proba[n], inf.in_set[n], **common)  # type: ignore[arg-type]
        checked = self.check_facts(facts)
        fusion = self.bundle.facts
        assert fusion is not None  # check_facts refuses a bundle without one
        fused, mask, disagree = fusion.fuse(inf.proba[n][None], [checked])
        mask = fusion.widen(mask, inf.in_set[n][None], disagree)
        return decide_with_facts(inf.proba[n], inf.in_set[n], fused[0], mask[0], conflict=bool(disagree[0]), **common)

    def assess(self, images: list[np.ndarray], heatmaps: bool | Sequence[bool] = False,
               facts: Sequence[Mapping[str, Any] | None] | None = None) -> list[tuple[Assessment, np.ndarray | None]]:
        """Assess decoded uint8 images (any size); one batch through the model.

        Args:
            heatmaps: for every image, or one flag per image: a class-activation map (at most
                :data:`HEATMAP_MAX_SIDE` pixels a side) is computed only where asked.
            facts: one dict (or None) per image, fused when the bundle has a facts model.
        """
        if not images:
            return []
        if facts is not None and len(facts) != len(images):
            raise ConfigError(f"{len(images)} images but {len(facts)} sets of facts")
        wanted = [heatmaps] * len(images) if isinstance(heatmaps, bool) else list(heatmaps)
        return [(r.assessment, r.heatmap) for r in self._results(images, wanted, facts)]  # type: ignore[misc]

    def _results(self, images: list[np.ndarray], wanted: Sequence[bool],
                 facts: Sequence[Mapping[str, Any] | None] | None = None, names: Sequence[str] | None = None
                 ) -> list[Result]:
        """One batch through the model; per image its assessment and, where wanted, its heatmaps (the top
        class's, and for a multi-label model one per condition present)."""
        inf = self.infer(images, fmap=any(wanted))
        out = []
        for n, img in enumerate(images):
            size = capped_size(img.shape[:2])
            out.append(Result(names[n] if names else "", self.decide(inf, n, facts[n] if facts else None),
                              heatmap=self.heatmap(inf, n, size) if wanted[n] else None,
                              finding_heatmaps=self.finding_heatmaps(inf, n, size) if wanted[n] else None))
        return out

    def heatmap(self, inf: Inference, n: int, size: tuple[int, int]) -> np.ndarray | None:
        """Where the model looked for the class it calls (multi-label: its most probable condition); None for a
        model without a feature map (an imported one)."""
        if inf.fmap is None:
            return None
        return self._cam(inf.fmap[n], int(decisions(inf.proba[n], self.policy.finding_weights)), size)

    def finding_heatmaps(self, inf: Inference, n: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
        """Multi-label: a class-activation map for every condition present (condition k: head row k)."""
        if inf.present is None or inf.fmap is None:
            return {}
        ids = self.bundle.labels.class_ids
        return {ids[k]: self._cam(inf.fmap[n], int(k), size) for k in np.flatnonzero(inf.present[n])}

    def _cam(self, fmap: np.ndarray, cls: int, size: tuple[int, int]) -> np.ndarray:
        """Class-activation map of class ``cls`` (Zhou et al. 2016), mapped back onto the input image."""
        assert self.bundle.head_weight is not None  # a bundle with a feature map has its head
        cam = np.tensordot(self.bundle.head_weight[cls], fmap, axes=(0, 0))  # (h, w)
        cam = np.maximum(cam, 0)
        cam = cam / cam.max() if cam.max() > 0 else cam
        h, w = size
        mode = self.bundle.preprocess.resize
        if mode == "stretch":
            return _resize01(cam, w, h)
        side = min(h, w) if mode == "center_crop" else max(h, w)
        square = _resize01(cam, side, side)
        if mode == "center_crop":
            full = np.zeros((h, w), np.float32)
            top, left = (h - side) // 2, (w - side) // 2
            full[top : top + side, left : left + side] = square
            return full
        top, left = (side - h) // 2, (side - w) // 2
        return square[top : top + h, left : left + w]

    def predict_paths(self, paths: Iterable[Path | str], heatmaps: bool = False) -> Iterator[Result]:
        """Stream results for files, in order, batching readable ones; unreadable files become errors."""
        return self.predict_items(((str(p), p) for p in paths), read_image, heatmaps)

    def predict_items(self, items: Iterable[tuple[str, T]], load: Callable[[T], np.ndarray],
                      heatmaps: bool = False) -> Iterator[Result]:
        """Stream results for (name, source) pairs, in order: ``load`` decodes a source (a path, or the bytes of
        an object-store file), ``batch_size`` items at a time, the readable ones in one model call; an ImageReadError
        becomes that item's error. With ``lanes`` > 1 that many batches are in progress at once, and no more: memory
        stays bounded on a stream of any length."""
        for results in self.map_batches(lambda chunk: self._chunk_results(chunk, load, heatmaps), items):
            yield from results

    def map_batches(self, fn: Callable[[list[T]], R], items: Iterable[T]) -> Iterator[R]:
        """``fn`` of every ``batch_size`` items in turn (the last batch shorter), in order, ``items`` read lazily.
        ``fn`` decodes its batch and runs it through the model; with ``lanes`` > 1 that many batches are in progress
        at once, each in its own thread, and no more: memory stays bounded on a stream of any length."""
        chunks = _chunks(items, self.batch_size)
        if self.lanes == 1:
            yield from map(fn, chunks)
            return
        with _one_blas_thread(), ThreadPoolExecutor(self.lanes, thread_name_prefix="carelens-lane") as pool:
            pending: deque[Future[R]] = deque()
            for chunk in chunks:
                pending.append(pool.submit(fn, chunk))
                if len(pending) > self.lanes:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _chunk_results(self, chunk: list[tuple[str, T]], load: Callable[[T], np.ndarray], heatmaps: bool
                       ) -> list[Result]:
        """One batch of a stream: every item decoded (an unreadable one is its error, in its place), the readable
        ones through the model together."""
        out: list[Result | None] = []
        readable: list[tuple[int, str, np.ndarray]] = []
        for name, source in chunk:
            try:
                readable.append((len(out), name, load(source)))
                out.append(None)
            except ImageReadError as exc:
                out.append(Result(name, error=exc.reason))
        if readable:
            results = self._results([img for _, _, img in readable], [heatmaps] * len(readable),
                                    names=[name for _, name, _ in readable])
            for (k, _, _), r in zip(readable, results, strict=True):
                out[k] = r
        return [r for r in out if r is not None]


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


HEATMAP_MAX_SIDE = 1024  # heatmaps and overlays: enough to see where the model looked, bounded in memory


def capped_size(size: tuple[int, int], max_side: int = HEATMAP_MAX_SIDE) -> tuple[int, int]:
    """(h, w) scaled down (keeping the aspect ratio) so that neither side exceeds ``max_side``."""
    h, w = size
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize01(a: np.ndarray, w: int, h: int) -> np.ndarray:
    img = Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float32), 0, 1)


def overlay_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> bytes:
    """A PNG of the image with the heatmap blended in (blue = low, red = high), at the heatmap's size."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[:2] != heat.shape:
        image = np.asarray(Image.fromarray(image).resize((heat.shape[1], heat.shape[0]), Image.Resampling.BILINEAR))
    h = heat[..., None]
    colour = np.concatenate([h, 1 - np.abs(2 * h - 1), 1 - h], axis=2) * 255  # blue -> green -> red
    mix = image.astype(np.float32) * (1 - alpha * h) + colour * alpha * h
    buf = io.BytesIO()
    Image.fromarray(np.clip(mix, 0, 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (searched recursively for images) and manifests (.csv/.json with a path column)."""
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix.lower() in (".csv", ".json") and p.is_file():
            out += [e.path for e in read_manifest(p) if e.path is not None]
        elif p.exists() or p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(p)  # a missing image file is reported per file, not fatal
        else:
            raise DataError(f"{p} is neither an image, a folder nor a manifest")
    return out


CSV_FIELDS = ["input", "error", "top_id", "top_probability", "prediction_set", "confidence", "triage", "triage_reason",
              "in_distribution", "ood_score", "flags", "findings", "factors"]


def write_results(results: Iterable[Result], stream: TextIO, fmt: str = "jsonl") -> Iterator[Result]:
    """Write each result as it comes (JSON lines or CSV) and pass it on."""
    writer = csv.DictWriter(stream, CSV_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for r in results:
        if writer is None:
            stream.write(json.dumps(r.to_dict()) + "\n")
        else:
            a = r.assessment
            writer.writerow({
                "input": r.input, "error": r.error or "",
                "top_id": a.top[0].id if a else "", "top_probability": a.top[0].probability if a else "",
                "prediction_set": "|".join(a.prediction_set) if a else "", "confidence": a.confidence if a else "",
                "triage": a.triage.level if a else "", "triage_reason": a.triage.reason if a else "",
                "in_distribution": a.in_distribution if a else "",
                "ood_score": a.ood_score if a else "", "flags": "|".join(a.flags) if a else "",
                "findings": "|".join(f"{f.id}:{f.severity or ''}" for f in a.findings if f.present) if a else "",
                "factors": "|".join(f"{c.input}:{c.log_odds:+.2f}" for c in (r.contributions or [])[:3]),
            })
        stream.flush()
        yield r
