"""Models loaded once at start, swapped atomically on reload; requests micro-batched per model."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carelens.bundle import load_bundle
from carelens.errors import BundleError
from carelens.predict.engine import Engine
from carelens.predict.schema import Assessment

__all__ = ["MicroBatcher", "ModelRegistry"]


class MicroBatcher:
    """Requests that arrive within ``max_wait_ms`` of each other share one model call (up to ``max_batch``).

    Inference runs in a worker thread, never on the event loop.
    """

    def __init__(self, engine: Engine, pool: ThreadPoolExecutor, max_batch: int, max_wait_ms: float) -> None:
        self.engine = engine
        self.pool = pool
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[tuple[np.ndarray, bool, asyncio.Future[Any]]] | None = None
        self.task: asyncio.Task[None] | None = None

    async def submit(self, image: np.ndarray, heatmap: bool) -> tuple[Assessment, np.ndarray | None]:
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.create_task(self._run())
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.queue.put((image, heatmap, fut))
        return await fut  # type: ignore[no-any-return]

    async def _run(self) -> None:
        assert self.queue is not None  # noqa: S101
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            while len(items) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            images = [i[0] for i in items]
            heat = any(i[1] for i in items)
            try:
                results = await loop.run_in_executor(self.pool, self.engine.assess, images, heat)
            except Exception as exc:  # noqa: BLE001 - delivered to every waiting request
                for _, _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, _, fut), res in zip(items, results, strict=True):
                if not fut.done():
                    fut.set_result(res)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()


@dataclass
class _Entry:
    engine: Engine
    batcher: MicroBatcher
    source: Path


@dataclass
class ModelRegistry:
    models_dir: Path
    max_batch: int = 8
    max_wait_ms: float = 5.0
    threads: int | None = None
    models: dict[str, _Entry] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=2))

    def _candidates(self) -> list[Path]:
        if not self.models_dir.is_dir():
            return []
        return sorted(p for p in self.models_dir.iterdir()
                      if (p.is_dir() and (p / "bundle.json").is_file()) or p.suffix == ".zip")

    def load(self) -> dict[str, Any]:
        """Load every bundle, then swap the whole table at once: requests see the old or the new set."""
        fresh: dict[str, _Entry] = {}
        errors: dict[str, str] = {}
        for path in self._candidates():
            try:
                b = load_bundle(path, threads=self.threads)  # verifies hashes and runs the self-test
            except BundleError as exc:
                errors[path.name] = str(exc)
                continue
            engine = Engine(b, batch_size=self.max_batch)
            old = self.models.get(b.name)
            if old is not None and old.engine.bundle.version == b.version and old.source == path:
                fresh[b.name] = old  # unchanged: keep the warm engine
                continue
            fresh[b.name] = _Entry(engine, MicroBatcher(engine, self._pool, self.max_batch, self.max_wait_ms), path)
        with self._lock:
            previous, self.models, self.errors = self.models, fresh, errors
        for name, entry in previous.items():
            if fresh.get(name) is not entry:
                entry.batcher.close()  # its in-flight requests already hold their futures
        return {"loaded": {n: e.engine.bundle.version for n, e in fresh.items()}, "errors": errors}

    def get(self, name: str) -> _Entry | None:
        return self.models.get(name)

    @property
    def ready(self) -> bool:
        return bool(self.models)
