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
from carelens.policy import Assessment
from carelens.predict import Engine

__all__ = ["MicroBatcher", "ModelEntry", "ModelRegistry"]

_STOP = object()


class MicroBatcher:
    """Requests that arrive within ``max_wait_ms`` of each other share one model call (up to ``max_batch``).

    Inference runs in a worker thread, never on the event loop.
    """

    def __init__(self, engine: Engine, pool: ThreadPoolExecutor, max_batch: int, max_wait_ms: float) -> None:
        self.engine = engine
        self.pool = pool
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[Any] | None = None
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    async def submit(self, image: np.ndarray, heatmap: bool,
                     facts: dict[str, Any] | None = None) -> tuple[Assessment, np.ndarray | None]:
        """``facts``: already checked with ``engine.check_facts`` (a bad one must not fail the whole batch)."""
        loop = asyncio.get_running_loop()
        if self.closed:  # retired by a reload after this request picked its model: answer it alone
            return (await loop.run_in_executor(self.pool, self.engine.assess, [image], heatmap, [facts]))[0]
        if self.queue is None:
            self.queue, self.loop = asyncio.Queue(), loop
            self.task = asyncio.create_task(self._run())
        fut: asyncio.Future[Any] = loop.create_future()
        await self.queue.put((image, heatmap, facts, fut))
        return await fut  # type: ignore[no-any-return]

    async def _run(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self.queue.get()
            items = [] if first is _STOP else [first]
            stopping = first is _STOP
            deadline = loop.time() + self.max_wait
            while len(items) < self.max_batch and not stopping:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    break
                if nxt is _STOP:
                    stopping = True
                else:
                    items.append(nxt)
            if stopping:  # drain: everything queued before the stop is still answered
                while not self.queue.empty():
                    nxt = self.queue.get_nowait()
                    if nxt is not _STOP:
                        items.append(nxt)
            if items:
                await self._answer(loop, items)

    async def _answer(self, loop: asyncio.AbstractEventLoop, items: list[Any]) -> None:
        for k in range(0, len(items), self.max_batch):
            await self._answer_batch(loop, items[k : k + self.max_batch])

    async def _answer_batch(self, loop: asyncio.AbstractEventLoop, items: list[Any]) -> None:
        images = [i[0] for i in items]
        heat = any(i[1] for i in items)
        facts = [i[2] for i in items]
        try:
            results = await loop.run_in_executor(self.pool, self.engine.assess, images, heat, facts)
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request
            for *_, fut in items:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (*_, fut), res in zip(items, results, strict=True):
            if not fut.done():
                fut.set_result(res)

    def close(self) -> None:
        """Retire gracefully (callable from any thread): queued requests are answered, then the worker ends."""
        self.closed = True
        if self.queue is not None and self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, _STOP)


@dataclass
class ModelEntry:
    engine: Engine
    batcher: MicroBatcher
    source: Path


@dataclass
class ModelRegistry:
    models_dir: Path
    max_batch: int = 8
    max_wait_ms: float = 5.0
    threads: int | None = None
    models: dict[str, ModelEntry] = field(default_factory=dict)
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
        fresh: dict[str, ModelEntry] = {}
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
            fresh[b.name] = ModelEntry(engine, MicroBatcher(engine, self._pool, self.max_batch, self.max_wait_ms), path)
        with self._lock:
            previous, self.models, self.errors = self.models, fresh, errors
        for name, entry in previous.items():
            if fresh.get(name) is not entry:
                entry.batcher.close()  # its in-flight requests already hold their futures
        return {"loaded": {n: e.engine.bundle.version for n, e in fresh.items()}, "errors": errors}

    def get(self, name: str) -> ModelEntry | None:
        return self.models.get(name)

    @property
    def ready(self) -> bool:
        return bool(self.models)
