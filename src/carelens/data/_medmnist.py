"""MedMNIST ``.npz`` files: reading with the official split, and fetching with the official MD5.

Online, :func:`fetch_medmnist` downloads from the official Zenodo record and refuses a file whose
MD5 differs from the published one. Offline, it looks in a local folder (``--data-dir`` or
``$CARELENS_DATA``) for ``NAME[_SIZE].npz`` or a folder ``NAME/`` holding it.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carelens.data._dataset import Dataset, Example
from carelens.errors import ChecksumError, ConfigError, DataError
from carelens.hashing import file_digest

__all__ = ["MEDMNIST", "MedMNISTInfo", "fetch_medmnist", "md5sum", "read_medmnist", "verify_md5"]

_ZENODO = "https://zenodo.org/records/10519652/files/{file}?download=1"
SIZES = (28, 64, 128, 224)


@dataclass(frozen=True)
class MedMNISTInfo:
    labels: tuple[str, ...]
    md5: dict[int, str]  # image size -> MD5 of the official file
    n_samples: tuple[int, int, int]  # train, val, test

    def filename(self, name: str, size: int) -> str:
        return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


# From MedMNIST v3 (medmnist/info.py); the sets carelens has specs or users for.
MEDMNIST: dict[str, MedMNISTInfo] = {
    "pneumoniamnist": MedMNISTInfo(
        ("normal", "pneumonia"),
        {28: "28209eda62fecd6e6a2d98b1501bb15f", 64: "8f4eceb4ccffa70c672198ea285246c6",
         128: "05b46931834c231683c68f40c47b2971", 224: "d6a3c71de1b945ea11211b03746c1fe1"},
        (4708, 524, 624),
    ),
    "breastmnist": MedMNISTInfo(
        ("malignant", "normal, benign"),
        {28: "750601b1f35ba3300ea97c75c52ff8f6", 64: "742edef2a1fd1524b2efff4bd7ba9364",
         128: "363e4b3f8d712e9b5de15470a2aaadf1", 224: "b56378a6eefa9fed602bb16d192d4c8b"},
        (546, 78, 156),
    ),
    "dermamnist": MedMNISTInfo(
        ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),  # MedMNIST's order, HAM10000 codes
        {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
         128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"},
        (7007, 1003, 2005),
    ),
    "retinamnist": MedMNISTInfo(
        ("0", "1", "2", "3", "4"),
        {28: "bd4c0672f1bba3e3a89f0e4e876791e4", 64: "afda852cc34dcda56f86ad2b2457dbcc",
         128: "e48e916a24454daf90583d4e6efb1a18", 224: "eae7e3b6f3fcbda4ae613ebdcbe35348"},
        (1080, 120, 400),
    ),
}

SPLITS = ("train", "val", "test")


def md5sum(path: Path) -> str:
    """MD5 of a file: the checksum MedMNIST publishes."""
    return file_digest(path, "md5")


def _info_for(path: Path) -> tuple[str, MedMNISTInfo | None]:
    stem = path.stem.lower()
    for name, info in MEDMNIST.items():
        if stem.startswith(name):
            return name, info
    return stem, None


def read_medmnist(path: str | Path, name: str | None = None) -> Dataset:
    """Read a MedMNIST ``.npz`` with its official train/val/test split.

    Raises:
        DataError: the file lacks the MedMNIST keys or is not a readable ``.npz``.
    """
    p = Path(path)
    guessed, info = _info_for(p)
    try:
        npz = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{p} is not a readable .npz file: {exc}") from None
    with npz:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
        if missing:
            raise DataError(
                f"{p} is not a MedMNIST file: keys {', '.join(missing)} are missing "
                f"(found {', '.join(npz.files)})"
            )
        images = np.concatenate([npz[f"{s}_images"] for s in SPLITS])
        labels = [np.asarray(npz[f"{s}_labels"]).reshape(len(npz[f"{s}_labels"]), -1) for s in SPLITS]
    if images.dtype != np.uint8:
        raise DataError(f"{p}: images must be uint8, found {images.dtype}")
    if any(lab.shape[1] != 1 for lab in labels):
        raise DataError(f"{p}: multi-label MedMNIST sets are not supported yet (labels have >1 column)")
    names = info.labels if info else None
    examples: list[Example] = []
    row = 0
    for split, lab in zip(SPLITS, labels, strict=True):
        for j, v in enumerate(lab[:, 0]):
            text = names[int(v)] if names else str(int(v))
            examples.append(Example(id=f"{split}/{j}", label=text, source_label=text, index=row, split=split))
            row += 1
    return Dataset(name or guessed, examples, source="medmnist", root=p, images=images)


def fetch_medmnist(
    name: str,
    size: int = 28,
    *,
    data_dir: Path | None = None,
    download_dir: Path | None = None,
    offline: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Find or download ``NAME[_SIZE].npz`` and return its path.

    A local copy in ``data_dir`` (``NAME_SIZE.npz``, or any ``.npz`` in ``data_dir/NAME/``) is used
    as is; a non-official local file is accepted with its MD5 reported by the caller. Otherwise the
    file is downloaded into ``download_dir`` and its MD5 must equal the published one.

    Raises:
        ConfigError: unknown name or size.
        ChecksumError: the download's MD5 differs from the official one (the file is deleted).
        DataError: offline and no local copy found.
    """
    if name not in MEDMNIST:
        raise ConfigError(f"unknown MedMNIST set {name!r}; known: {', '.join(sorted(MEDMNIST))}")
    if size not in SIZES:
        raise ConfigError(f"--size must be one of {SIZES}, got {size}")
    info = MEDMNIST[name]
    fname = info.filename(name, size)
    if data_dir is not None:
        for cand in (data_dir / fname, data_dir / name / fname):
            if cand.is_file():
                return cand
        folder = data_dir / name
        if folder.is_dir() and size == 28:
            local = sorted(folder.glob("*.npz"))
            if local:
                return local[0]
    if offline:
        raise DataError(
            f"{fname} was not found under {data_dir} and downloads are off. Put the file there "
            "(or in a sub-folder named after the set), or run online."
        )
    target_dir = download_dir or data_dir or Path(".")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / fname
    url = _ZENODO.format(file=fname)
    with tempfile.NamedTemporaryFile(dir=target_dir, suffix=".part", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                while chunk := resp.read(1 << 20):
                    tmp.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except OSError as exc:
            tmp_path.unlink(missing_ok=True)
            raise DataError(
                f"could not download {url} ({exc}). Offline? Put {fname} in a folder and pass "
                "--data-dir (or set CARELENS_DATA)."
            ) from None
    verify_md5(tmp_path, info.md5[size], name=fname)
    shutil.move(str(tmp_path), target)
    return target


def verify_md5(path: Path, expected: str, *, name: str) -> None:
    """Refuse (and delete) a file whose MD5 is not the published one."""
    got = md5sum(path)
    if got != expected:
        path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{name}: MD5 {got} does not match the official {expected}; the file was deleted. "
            "The download was corrupted or the file is not the official release: retry, or use a "
            "local copy you trust."
        )
