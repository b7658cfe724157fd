"""Uploaded images: read within the limits, decoded off the event loop, assessed through the model's
micro-batcher, and (when configured) kept."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request, UploadFile

from carelens.data import decode_image
from carelens.policy import Assessment
from carelens.predict import overlay_heatmap
from carelens.serve.deps import Services, in_thread
from carelens.serve.errors import ApiError

__all__ = ["Upload", "assess_image", "read_upload"]


@dataclass(frozen=True)
class Upload:
    data: bytes
    image: np.ndarray  # (H, W, 3) uint8
    sha256: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


async def read_upload(upload: UploadFile, svc: Services) -> Upload:
    """The upload's bytes and decoded image (413 over the byte or pixel limit, 415 not an image, 400 empty)."""
    cfg = svc.settings
    data = await upload.read(cfg.max_upload_bytes + 1)
    if len(data) > cfg.max_upload_bytes:
        raise ApiError(413, "too_large", f"the upload is over the {cfg.max_upload_bytes:,}-byte limit")
    if not data:
        raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
    name = upload.filename or "upload"
    async with svc.decode_slots:  # a few decodes at a time: each can take a few hundred MB at the pixel limit
        img = await in_thread(lambda: decode_image(data, name=name, max_pixels=cfg.max_pixels))
    up = Upload(data, img, hashlib.sha256(data).hexdigest())
    if cfg.store_images:
        await in_thread(_store, cfg.images_dir, up)
    return up


def _store(folder: Path, up: Upload) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / up.sha256).write_bytes(up.data)


async def assess_image(svc: Services, model: str | None, img: np.ndarray, heatmap: bool,
                       facts: dict[str, Any] | None = None, request: Request | None = None,
                       species: str | None = None) -> tuple[Assessment, str | None, str, str]:
    """(assessment, heatmap PNG as base64 or None, model name, model version) of one decoded image.

    ``facts`` must already be checked with the engine's ``check_facts``: a bad one must not fail the batch.
    With ``request``, a caller that has already gone away is not queued for the model at all.
    """
    name, entry = svc.resolve(model, species)
    if request is not None and await request.is_disconnected():
        raise ApiError(499, "client_closed", "the client closed the connection before its image was assessed")
    timeout = svc.settings.request_timeout_s
    try:
        a, heat = await asyncio.wait_for(entry.batcher.submit(img, heatmap, facts), timeout)
    except TimeoutError:
        raise ApiError(503, "timeout", f"the model did not answer within {timeout:.0f} s") from None
    png = None
    if heatmap and heat is not None:  # blended off the event loop, at the heatmap's capped size
        png = base64.b64encode(await in_thread(overlay_heatmap, img, heat)).decode()
    svc.metrics.observe_assessment(name, a.top[0].id, a.triage.level, a.in_distribution)
    return a, png, name, entry.engine.bundle.version
