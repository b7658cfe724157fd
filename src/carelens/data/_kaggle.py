"""Datasets from Kaggle with the official client (`carelens data fetch kaggle OWNER/DATASET`), or from a local
folder when offline.

The client needs an API token: ``~/.kaggle/kaggle.json`` (or ``$KAGGLE_CONFIG_DIR/kaggle.json``) or the
``KAGGLE_USERNAME`` and ``KAGGLE_KEY`` variables; it is checked before anything is downloaded, and its absence
is an error that says where to get one. Kaggle publishes no per-file checksums, so a fetch records its own
(``SHA256SUMS.txt`` and ``carelens_fetch.json`` in the folder): a later fetch into the same folder verifies the
files against them instead of downloading again, and says which file changed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from carelens.errors import ChecksumError, ConfigError, DataError, MissingExtraError
from carelens.hashing import check_digests, file_digest

__all__ = ["KAGGLE_SETS", "KaggleSet", "fetch_kaggle", "kaggle_credentials"]

RECORD = "carelens_fetch.json"
SUMS = "SHA256SUMS.txt"


@dataclass(frozen=True)
class KaggleSet:
    slug: str  # OWNER/DATASET on Kaggle
    local: str  # the folder name under CARELENS_DATA that holds the same data
    note: str


KAGGLE_SETS = {  # the sets users ask for, by the short names carelens uses
    "ham10000": KaggleSet("kmader/skin-cancer-mnist-ham10000", "ham10000",
                          "HAM10000 dermoscopy (CC BY-NC 4.0): metadata CSV + 10,015 JPEGs; `--spec ham10000`"),
    "chest_xray": KaggleSet("paultimothymooney/chest-xray-pneumonia", "chest_xray",
                            "pediatric chest X-rays (Kermany 2018), NORMAL / PNEUMONIA folders with train/val/test"),
    "busi": KaggleSet("aryashah2k/breast-ultrasound-images-dataset", "busi_breast_ultrasound_256",
                      "BUSI breast ultrasound (Al-Dhabyani 2020): benign / malignant / normal folders with masks"),
}


def kaggle_credentials() -> str | None:
    """Where the Kaggle token was found (a description), or None."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME / KAGGLE_KEY"
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    return str(folder / "kaggle.json") if (folder / "kaggle.json").is_file() else None


def _resolve(dataset: str) -> KaggleSet:
    if dataset in KAGGLE_SETS:
        return KAGGLE_SETS[dataset]
    if dataset.count("/") != 1 or not all(dataset.split("/")):
        raise ConfigError(f"{dataset!r} is not a Kaggle dataset: give OWNER/DATASET (as in its URL) or one of "
                          f"{', '.join(KAGGLE_SETS)}")
    return KaggleSet(dataset, dataset.split("/")[1], "")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (RECORD, SUMS))


def _verify(folder: Path) -> bool:
    """True when the folder holds an earlier fetch whose files all match their recorded sha256."""
    sums = folder / SUMS
    if not sums.is_file():
        return False
    recorded = {name: digest for digest, _, name in (line.partition("  ") for line in sums.read_text().splitlines())}
    missing, changed = check_digests(folder, recorded)
    if missing:
        raise DataError(f"{folder / missing[0]} is missing from the fetched copy; delete the folder and fetch again")
    if changed:
        raise ChecksumError(f"{folder / changed[0]} changed since it was fetched (sha256 differs from {SUMS}); delete "
                            "the folder and fetch again")
    return True


def fetch_kaggle(dataset: str, out: Path, *, data_dir: Path | None = None, offline: bool = False) -> Path:
    """The folder holding ``dataset`` (OWNER/DATASET or a short name of :data:`KAGGLE_SETS`).

    Looked for first in ``data_dir`` (its usual folder name there, used as is), then in ``out`` (an earlier fetch,
    verified against its checksums); otherwise downloaded into ``out/<name>/`` with the official client and
    unzipped, and its checksums recorded.

    Raises:
        ConfigError: a malformed name, or no Kaggle token (says where to put one).
        DataError: offline and not found locally.
        MissingExtraError: the ``kaggle`` package is not installed.
    """
    kset = _resolve(dataset)
    if data_dir is not None and (data_dir / kset.local).is_dir():
        return data_dir / kset.local
    target = out / kset.local
    if _verify(target):
        return target
    if offline:
        raise DataError(f"{dataset} is not in {data_dir or '(no local folder given)'} or {out}, and --offline forbids "
                        f"downloading it; put the unzipped dataset in {target} (or {kset.local}/ under CARELENS_DATA)")
    where = kaggle_credentials()
    if where is None:
        raise ConfigError("no Kaggle API token: create one at https://www.kaggle.com/settings (API, 'Create New Token') "
                          "and save it as ~/.kaggle/kaggle.json (chmod 600), or set KAGGLE_USERNAME and KAGGLE_KEY; "
                          f"or download {kset.slug} yourself and unzip it into {target}")
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi  # the module that does not authenticate on import
    except ImportError:
        raise MissingExtraError("fetching from Kaggle needs the official client: pip install 'carelens[kaggle]'") from None
    api = KaggleApi()
    api.authenticate()
    target.mkdir(parents=True, exist_ok=True)
    api.dataset_download_files(kset.slug, path=str(target), unzip=True, quiet=False)
    files = _files(target)
    if not files:
        raise DataError(f"the download of {kset.slug} into {target} holds no files")
    (target / SUMS).write_text("".join(f"{file_digest(p)}  {p.relative_to(target)}\n" for p in files))
    (target / RECORD).write_text(json.dumps({
        "dataset": kset.slug, "fetched": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "files": len(files),
        "bytes": sum(p.stat().st_size for p in files), "credentials": where}, indent=1))
    return target
