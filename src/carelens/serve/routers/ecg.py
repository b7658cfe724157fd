"""ECG screening from the signal: upload a record's files (a WFDB ``.hea`` + ``.dat``, an ``.edf``, or a
``.csv`` with one column per lead), get the rate and rhythm screen and a strip with the detected beats."""

import base64
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from carelens.ecg import evidence_window, load_rules, screen, strip_png
from carelens.errors import DataError
from carelens.predict import assess_record, beat_classifier
from carelens.serve.auth import Principal
from carelens.serve.deps import ServicesDep, in_thread, principal
from carelens.serve.errors import ERROR_RESPONSES, ApiError
from carelens.serve.records import read_record_upload
from carelens.serve.schemas import EcgResponse

router = APIRouter(prefix="/v1", tags=["ecg"])


@router.post("/ecg", response_model=EcgResponse, responses=ERROR_RESPONSES,
             form_limits={"max_files": 2, "max_fields": 8, "max_part_size": 64 * 1024})  # a record's .hea + .dat
async def ecg(svc: ServicesDep, who: Annotated[Principal, Depends(principal)],
              files: Annotated[list[UploadFile], File(description="the record: .hea + .dat, or one .edf or .csv")],
              species: Annotated[str | None, Form(description="the patient's species")] = None,
              lead: Annotated[str | None, Form(description="lead to screen (default: the lead where two R-peak "
                                                           "detectors agree most; MLII, else II, else the first on a "
                                                           "tie)")] = None,
              fs: Annotated[float | None, Form(gt=0, description="sampling rate in Hz (CSV without a time column)")] = None,
              plot: Annotated[bool, Form(description="return a strip with the detected beats (PNG)")] = True,
              ) -> EcgResponse:
    t = time.perf_counter()
    rules = load_rules()
    wanted = svc.species_for(species) if species else None  # only a named species is checked
    if wanted and wanted not in rules.species:
        raise ApiError(422, "wrong_species", f"the ECG screen is for {', '.join(rules.species)}, not {wanted}")
    sig, sha = await read_record_upload(files, svc, fs)
    beats = next((b for b in svc.registry.signal.values() if b.spec.input == "beats"), None)  # a beat classifier
    classify = beat_classifier(beats) if beats is not None else None
    a, peaks = await in_thread(lambda: screen(sig, lead, rules=rules, classify=classify))
    diagnosis, notes = None, []
    for rm in (b for b in svc.registry.signal.values() if b.spec.input == "record"):  # the first record model that fits
        try:
            diagnosis = await in_thread(assess_record, rm, sig, svc.registry.signal_policy(rm))
            break
        except DataError as exc:  # not its leads or too short: say why, screen all the same
            notes.append(str(exc))
    png = None
    if plot:
        x = sig.samples[:, sig.lead_index(a.lead)]
        shown = evidence_window(a, peaks, sig.fs)
        png = base64.b64encode(await in_thread(
            lambda: strip_png(x, sig.fs, peaks, start_s=shown.start_s, highlight=shown.highlight,
                              title=f"{sig.name} lead {a.lead}: {a.heart_rate_bpm or '?'} bpm, {shown.caption}"),
        )).decode()
    ms = (time.perf_counter() - t) * 1000
    pid = await svc.audit.record(kind="ecg", model_name=rules.name, model_version=rules.version,
                                 assessment=a.model_dump(mode="json")
                                 | {"diagnosis": diagnosis.model_dump(mode="json") if diagnosis else None},
                                 latency_ms=ms, input_sha256=sha, api_key_id=who.key_id)
    return EcgResponse(id=pid, assessment=a, diagnosis=diagnosis, diagnosis_notes=notes if diagnosis is None else [],
                       strip_png=png, latency_ms=round(ms, 2))
