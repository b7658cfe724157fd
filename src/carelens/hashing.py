"""Digests, one implementation each: files (MD5 for published dataset checksums, sha256 for bundle files)
and JSON documents (sha256 of a canonical serialisation: bundle integrity, split assignments)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["canonical_digest", "check_digests", "file_digest", "integrity_digest"]


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


def integrity_digest(doc: Mapping[str, Any]) -> str:
    """A manifest's integrity digest: :func:`canonical_digest` of everything in it but its own ``integrity`` field
    (what a bundle is sealed with when written, and checked against when loaded)."""
    return canonical_digest({k: v for k, v in doc.items() if k != "integrity"})


def check_digests(folder: Path, digests: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(missing, changed): the names of ``digests`` (relative path -> sha256) absent from ``folder``, and those
    whose file no longer has its recorded sha256."""
    missing = [n for n in digests if not (folder / n).is_file()]
    changed = [n for n, d in digests.items() if n not in missing and file_digest(folder / n) != d]
    return missing, changed
