"""Uploaded ECG records: a WFDB record's ``.hea`` + ``.dat``, or one ``.edf`` or ``.csv``, written under checked
names into a temporary folder and read there (:func:`carelens.ecg.read_ecg`), within the upload limit."""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

from fastapi import UploadFile

from carelens.ecg import EcgSignal, read_ecg
from carelens.serve.deps import Services, in_thread
from carelens.serve.errors import ApiError

__all__ = ["SUFFIXES", "read_record_upload"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SUFFIXES = (".hea", ".dat", ".edf", ".csv")


async def _save(files: list[UploadFile], folder: Path, svc: Services) -> tuple[Path, str]:
    """Write the uploads under their (checked) names; the path to read and the sha256 of all bytes."""
    digest = hashlib.sha256()
    total = 0
    names = []
    for f in files:
        name = Path(f.filename or "").name
        if not _NAME.match(name) or Path(name).suffix.lower() not in SUFFIXES:
            raise ApiError(422, "bad_file_name", f"file name {f.filename!r}: send files named like 100.hea, 100.dat, "
                                                 f"ecg.edf or ecg.csv ({', '.join(SUFFIXES)}; letters, digits, . _ -)")
        data = await f.read(svc.settings.max_upload_bytes + 1)
        total += len(data)
        if total > svc.settings.max_upload_bytes:
            raise ApiError(413, "too_large", f"the upload is over the {svc.settings.max_upload_bytes:,}-byte limit")
        if not data:
            raise ApiError(400, "empty_file", f"{name} is empty (0 bytes)")
        digest.update(data)
        (folder / name).write_bytes(data)
        names.append(name)
    suffixes = {Path(n).suffix.lower() for n in names}
    if ".hea" in suffixes:
        hea = next(n for n in names if n.lower().endswith(".hea"))
        if ".dat" not in suffixes:
            raise ApiError(422, "incomplete_record", f"{hea} needs its signal file too: send the .hea and the .dat")
        return folder / hea, digest.hexdigest()
    if len(names) != 1 or suffixes & {".dat"}:
        raise ApiError(422, "incomplete_record", "send one .edf or .csv, or a WFDB record's .hea and .dat files")
    return folder / names[0], digest.hexdigest()


async def read_record_upload(files: list[UploadFile], svc: Services, fs: float | None = None) -> tuple[EcgSignal, str]:
    """(the signal, the sha256 of the uploaded bytes); a file that is no ECG is a DataError (422)."""
    with tempfile.TemporaryDirectory(prefix="carelens-ecg-") as tmp:
        path, sha = await _save(files, Path(tmp), svc)
        return await in_thread(read_ecg, path, fs), sha
