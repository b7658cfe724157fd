"""Prometheus metrics in the text exposition format (counters and a latency histogram).

With several service workers each one counts what it answered; a scrape reaches one of them. So, as Prometheus'
own client does in its multiprocess mode, every worker writes its counts to a file in a shared folder
(``CARELENS_METRICS_DIR``), and ``/metrics`` answers the sum over the folder: the service's totals, whichever
worker is asked. A worker that exits leaves its file, so counters never go backwards.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "RequestObserver"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{str(v).replace(chr(34), "")}"' for k, v in kv.items())
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.buckets: Counter[tuple[str, float]] = Counter()
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: Counter[str] = Counter()
        self.predictions: Counter[tuple[str, str]] = Counter()
        self.triage: Counter[str] = Counter()
        self.ood: Counter[tuple[str, bool]] = Counter()
        self.explanations: Counter[tuple[str, str]] = Counter()  # (by, outcome)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.latency_sum[route] += seconds
            self.latency_count[route] += 1
            for b in BUCKETS:
                if seconds <= b:
                    self.buckets[(route, b)] += 1

    def observe_assessment(self, model: str, top: str, level: str, in_distribution: bool) -> None:
        with self._lock:
            self.predictions[(model, top)] += 1
            self.triage[level] += 1
            self.ood[(model, in_distribution)] += 1

    def observe_explanation(self, by: str, outcome: str) -> None:
        """``by`` template | llm; ``outcome`` ok | guardrail | error (a language-model answer replaced, and why)."""
        with self._lock:
            self.explanations[(by, outcome)] += 1

    _COUNTERS = ("requests", "buckets", "latency_count", "predictions", "triage", "ood", "explanations")

    def state(self) -> dict[str, Any]:
        """Every count, JSON-ready (tuple keys as lists)."""
        with self._lock:
            out: dict[str, Any] = {name: [[*(k if isinstance(k, tuple) else (k,)), n]
                                          for k, n in getattr(self, name).items()] for name in self._COUNTERS}
            out["latency_sum"] = [[k, v] for k, v in self.latency_sum.items()]
        return out

    def add(self, state: dict[str, Any]) -> None:
        """Add another worker's counts (``state()``) to these."""
        with self._lock:
            for name in self._COUNTERS:
                counter: Counter[Any] = getattr(self, name)
                for *key, n in state.get(name, []):
                    counter[tuple(key) if len(key) > 1 else key[0]] += n
            for route, v in state.get("latency_sum", []):
                self.latency_sum[route] += v

    def dump(self, folder: Path) -> None:
        """Write this worker's counts to ``folder`` (atomically: a reader never sees half a file). Each call writes its
        own temporary file: a worker dumps from its sync thread and from a /metrics scrape at once, and with one shared
        name the second rename found the file already moved (a scrape answered 500 in CI)."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".worker-{os.getpid()}-{uuid.uuid4().hex}.json.tmp"
        tmp.write_text(json.dumps(self.state()))
        tmp.replace(folder / f"worker-{os.getpid()}.json")

    @classmethod
    def combined(cls, folder: Path) -> Metrics:
        """The sum of every worker's counts written to ``folder``."""
        total = cls()
        for f in sorted(folder.glob("worker-*.json")):
            try:
                total.add(json.loads(f.read_text()))
            except (OSError, ValueError):  # a worker's file being replaced right now: its previous one is gone
                continue
        return total

    def render(self) -> str:
        lines = ["# HELP carelens_requests_total HTTP requests", "# TYPE carelens_requests_total counter"]
        with self._lock:
            for (m, r, s), n in sorted(self.requests.items()):
                lines.append(f"carelens_requests_total{_labels(method=m, route=r, status=str(s))} {n}")
            lines += ["# HELP carelens_request_seconds request latency", "# TYPE carelens_request_seconds histogram"]
            for route in sorted(self.latency_count):
                for b in BUCKETS:
                    lines.append(f"carelens_request_seconds_bucket{_labels(route=route, le=str(b))} "
                                 f"{self.buckets[(route, b)]}")
                lines.append(f"carelens_request_seconds_bucket{_labels(route=route, le='+Inf')} "
                             f"{self.latency_count[route]}")
                lines.append(f"carelens_request_seconds_sum{_labels(route=route)} {self.latency_sum[route]:.6f}")
                lines.append(f"carelens_request_seconds_count{_labels(route=route)} {self.latency_count[route]}")
            lines += ["# TYPE carelens_predictions_total counter"]
            for (model, top), n in sorted(self.predictions.items()):
                lines.append(f"carelens_predictions_total{_labels(model=model, top_class=top)} {n}")
            lines += ["# TYPE carelens_triage_total counter"]
            for level, n in sorted(self.triage.items()):
                lines.append(f"carelens_triage_total{_labels(level=level)} {n}")
            lines += ["# TYPE carelens_out_of_distribution_total counter"]
            for (model, ind), n in sorted(self.ood.items()):
                if not ind:
                    lines.append(f"carelens_out_of_distribution_total{_labels(model=model)} {n}")
            lines += ["# HELP carelens_explanations_total answers explained, and language-model answers replaced",
                      "# TYPE carelens_explanations_total counter"]
            for (by, outcome), n in sorted(self.explanations.items()):
                lines.append(f"carelens_explanations_total{_labels(by=by, outcome=outcome)} {n}")
            total = sum(self.ood.values())
            rate = sum(n for (_, ind), n in self.ood.items() if not ind) / total if total else 0.0
        lines += ["# TYPE carelens_ood_rate gauge", f"carelens_ood_rate {rate:.6f}"]
        return "\n".join(lines) + "\n"


class RequestObserver:
    """Pure ASGI middleware: every response carries a request id (the caller's ``X-Request-ID`` when well-formed, else
    a new one; ``request.state.request_id`` for the handlers) and is counted by route and status, 5xx included (an
    exception is counted as a 500 and passed on to the error handler that answers it). Pure ASGI rather than
    ``@app.middleware("http")``, which costs a task group and memory streams on the event loop for every request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        status = 500  # until a response starts: an exception is a 500
        t = time.perf_counter()

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(scope["method"], path, status, time.perf_counter() - t)
