"""Where carelens finds data and keeps caches: one setting each, read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "cache_dir", "data_root", "threads_per_process", "useful_lanes"]

DATA_ENV = "CARELENS_DATA"


def data_root(explicit: str | Path | None = None) -> Path:
    """The folder of public datasets.

    Order: the explicit argument, then ``$CARELENS_DATA``, then ``../shared/data`` beside the
    current checkout (the layout CI uses). The folder may not exist; callers decide whether that
    is an error (see ``tests/conftest.py``).
    """
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[2]  # src/carelens/settings.py -> repo root
    return (repo.parent / "shared" / "data").resolve()


def cache_dir() -> Path:
    """A writable cache folder (``$CARELENS_CACHE`` or ``~/.cache/carelens``); never under data."""
    env = os.environ.get("CARELENS_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "carelens"
    path.mkdir(parents=True, exist_ok=True)
    return path


def threads_per_process(processes: int) -> int:
    """This machine's cores shared out among ``processes`` (service workers, training processes): at least one."""
    return max(1, (os.cpu_count() or 1) // processes)


def useful_lanes(lanes: int, items: int, batch_size: int) -> int:
    """``lanes`` (batches in progress at once), but no more than there are batches of ``items``: a lone batch gets
    every core."""
    return max(1, min(lanes, -(-items // batch_size)))
