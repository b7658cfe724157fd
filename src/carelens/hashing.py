"""Digests, one implementation each: files (MD5 for published dataset checksums, sha256 for bundle files)
and JSON documents (sha256 of a canonical serialisation: bundle integrity, split assignments)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["canonical_digest", "file_digest"]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm, usedforsecurity=False)  # integrity checks, not security
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_digest(obj: Any) -> str:
    """sha256 of a JSON-able object with sorted keys and no whitespace: equal content, equal digest."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
