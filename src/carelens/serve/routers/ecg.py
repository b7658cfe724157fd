"""ECG screening from the signal: upload a record's files (a WFDB ``.hea`` + ``.dat``, an ``.edf``, or a
``.csv`` with one column per lead), get the rate and rhythm screen and a strip with the detected beats."""

import base64
import hashlib
import re
import tempfile
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from carelens.ecg import EcgSignal, load_rules, read_ecg, screen, strip_png
from carelens.predict import beat_classifier
from carelens.serve.auth import Principal
from carelens.serve.deps import Services, ServicesDep, in_thread, principal
from carelens.serve.errors import ERROR_RESPONSES, ApiError
from carelens.serve.schemas import EcgResponse

router = APIRouter(prefix="/v1", tags=["ecg"])

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


@router.post("/ecg", response_model=EcgResponse, responses=ERROR_RESPONSES,
             form_limits={"max_files": 2, "max_fields": 8, "max_part_size": 64 * 1024})  # a record's .hea + .dat
async def ecg(svc: ServicesDep, who: Annotated[Principal, Depends(principal)],
              files: Annotated[list[UploadFile], File(description="the record: .hea + .dat, or one .edf or .csv")],
              species: Annotated[str | None, Form(description="the patient's species")] = None,
              lead: Annotated[str | None, Form(description="lead to screen (default MLII, else II, else the first)")] = None,
              fs: Annotated[float | None, Form(gt=0, description="sampling rate in Hz (CSV without a time column)")] = None,
              plot: Annotated[bool, Form(description="return a strip with the detected beats (PNG)")] = True,
              ) -> EcgResponse:
    t = time.perf_counter()
    rules = load_rules()
    wanted = svc.species_for(species) if species else None  # only a named species is checked
    if wanted and wanted not in rules.species:
        raise ApiError(422, "wrong_species", f"the ECG screen is for {', '.join(rules.species)}, not {wanted}")
    with tempfile.TemporaryDirectory(prefix="carelens-ecg-") as tmp:
        path, sha = await _save(files, Path(tmp), svc)
        sig: EcgSignal = await in_thread(read_ecg, path, fs)
    beats = next(iter(svc.registry.signal.values()), None)  # the loaded beat classifier, if any
    classify = beat_classifier(beats) if beats is not None else None
    a, peaks = await in_thread(lambda: screen(sig, lead, rules=rules, classify=classify))
    png = None
    if plot:
        x = sig.samples[:, sig.lead_index(lead)]
        png = base64.b64encode(await in_thread(
            lambda: strip_png(x, sig.fs, peaks, title=f"{sig.name} lead {a.lead}: {a.heart_rate_bpm or '?'} bpm"),
        )).decode()
    ms = (time.perf_counter() - t) * 1000
    pid = await in_thread(lambda: svc.log.record(kind="ecg", model_name=rules.name, model_version=rules.version,
                                                 assessment=a.model_dump(mode="json"), latency_ms=ms, input_sha256=sha,
                                                 api_key_id=who.key_id))
    return EcgResponse(id=pid, assessment=a, strip_png=png, latency_ms=round(ms, 2))
