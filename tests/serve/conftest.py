from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carelens.steps import calibrate_run
from carelens.steps.export import export_run


@pytest.fixture(scope="session")
def serve_dirs(tiny_pneumonia_run: Path, symptom_bundle_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    calibrate_run(tiny_pneumonia_run)
    export_run(tiny_pneumonia_run, root / "models" / "chest", name="chest", version="1")
    return {"models": root / "models", "symptoms": symptom_bundle_dir, "root": root, "run": tiny_pneumonia_run}


@pytest.fixture()
def models_copy(serve_dirs: dict[str, Path], tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(serve_dirs["models"], dst)
    return dst


@pytest.fixture(scope="session")
def xray_png(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    with np.load(pneumonia_npz) as z:
        img = z["test_images"][3]
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()
