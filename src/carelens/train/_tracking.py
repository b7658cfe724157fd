"""Experiment tracking: a training run's recipe, per-epoch measures and files, logged as they happen.

``MlflowTracker`` logs to MLflow (the ``track`` extra). Its default store is ``mlruns/`` in the working folder:
an SQLite database (``mlruns/mlflow.db``; MLflow 3 keeps its plain-file store in maintenance mode) with the
artifacts beside it (``mlruns/artifacts``). Any tracking URI (a server, PostgreSQL) can be given instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

from carelens.errors import ConfigError

__all__ = ["MlflowTracker", "Tracker", "flatten", "make_tracker"]


class Tracker(Protocol):
    def start(self, name: str, params: dict[str, Any]) -> None: ...
    def log_epoch(self, step: int, row: dict[str, Any]) -> None: ...
    def finish(self, metrics: dict[str, Any], files: list[Path]) -> None: ...


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``preprocess.image_size``); lists as their string form."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _numbers(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in flatten(d).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


class MlflowTracker:
    """Logs to MLflow. ``uri`` None: ``sqlite:///mlruns/mlflow.db`` with artifacts in ``mlruns/artifacts``."""

    def __init__(self, uri: str | None = None, experiment: str = "carelens", root: str | Path = "mlruns") -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--track mlflow needs MLflow: pip install 'carelens[track]'") from None
        self.mlflow = mlflow
        self.root = Path(root).resolve()
        if uri is None:
            self.root.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.uri = uri
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            location = (self.root / "artifacts").as_uri() if uri.startswith("sqlite:///") else None
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
        self.run_id: str | None = None

    def start(self, name: str, params: dict[str, Any]) -> None:
        run = self.mlflow.start_run(run_name=name)
        self.run_id = run.info.run_id
        self.mlflow.log_params({k: str(v) for k, v in flatten(params).items()})

    def log_epoch(self, step: int, row: dict[str, Any]) -> None:
        self.mlflow.log_metrics(_numbers(row), step=step)

    def finish(self, metrics: dict[str, Any], files: list[Path]) -> None:
        self.mlflow.log_metrics(_numbers(metrics))
        for f in files:
            if f.is_file():
                self.mlflow.log_artifact(str(f))
        self.mlflow.end_run()


def make_tracker(kind: str | None, uri: str | None = None, experiment: str = "carelens") -> Tracker | None:
    """The tracker a ``--track`` value names (``None`` or ``none``: no tracking)."""
    if kind in (None, "none"):
        return None
    if kind == "mlflow":
        return MlflowTracker(uri, experiment)
    raise ConfigError(f"unknown tracker {kind!r}; choose mlflow or none")
