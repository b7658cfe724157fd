"""Shared fixtures. Real data comes from $CARELENS_DATA (default ../shared/data beside the repo).

Outside CI a test that needs it skips with the reason; under CI=true a missing folder fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from carelens.settings import data_root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not root.is_dir():
        msg = f"real data folder {root} is missing (set CARELENS_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def ham(data_dir: Path):  # type: ignore[no-untyped-def]
    from carelens.data import open_dataset

    return open_dataset(data_dir / "ham10000", "ham10000")


@pytest.fixture(scope="session")
def busi_dir(data_dir: Path) -> Path:
    return data_dir / "busi_breast_ultrasound_256"


@pytest.fixture(scope="session")
def pneumonia_npz(data_dir: Path) -> Path:
    return data_dir / "pneumoniamnist" / "pneumoniamnist_reconstructed_official_split_counts.npz"
