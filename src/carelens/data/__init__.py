"""Data: sources, image reading, audit and splits."""

from carelens.data._audit import AuditReport, ClassAudit, audit_dataset
from carelens.data._dataset import NO_FINDING, Dataset, Example, UnreadableImageWarning, findings_label
from carelens.data._image_io import IMAGE_SUFFIXES, MAX_PIXELS, decode_image, read_image, to_rgb_array
from carelens.data._medmnist import MEDMNIST, fetch_medmnist, md5sum, read_medmnist, verify_md5
from carelens.data._multilabel import (
    ODIR_GRADES,
    is_condition_folder,
    odir_eye_findings,
    read_condition_folder,
    read_odir,
)
from carelens.data._scan import ScanResult, near_duplicate_pairs, scan_dataset
from carelens.data._sources import (
    HAM10000_FORMAT,
    HAM10000_KAGGLE_FORMAT,
    ManifestFormat,
    is_split_layout,
    open_dataset,
    read_folder,
    read_manifest,
    read_split_folders,
)
from carelens.data._splits import (
    SPLIT_NAMES,
    Splits,
    groups_from_pairs,
    load_run_splits,
    load_splits,
    make_folds,
    make_splits,
    read_split_document,
    split_dataset,
)
from carelens.data._synth import (
    DOG_SKIN,
    SYNTH_CONDITIONS,
    synthetic_skin_image,
    write_synthetic_dog_cases,
    write_synthetic_multilabel,
)

__all__ = [
    "DOG_SKIN",
    "HAM10000_FORMAT",
    "HAM10000_KAGGLE_FORMAT",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MEDMNIST",
    "NO_FINDING",
    "ODIR_GRADES",
    "SPLIT_NAMES",
    "SYNTH_CONDITIONS",
    "AuditReport",
    "ClassAudit",
    "Dataset",
    "Example",
    "ManifestFormat",
    "ScanResult",
    "Splits",
    "UnreadableImageWarning",
    "audit_dataset",
    "decode_image",
    "fetch_medmnist",
    "findings_label",
    "groups_from_pairs",
    "is_condition_folder",
    "is_split_layout",
    "load_run_splits",
    "load_splits",
    "make_folds",
    "make_splits",
    "md5sum",
    "near_duplicate_pairs",
    "odir_eye_findings",
    "open_dataset",
    "read_condition_folder",
    "read_folder",
    "read_image",
    "read_manifest",
    "read_medmnist",
    "read_odir",
    "read_split_document",
    "read_split_folders",
    "scan_dataset",
    "split_dataset",
    "synthetic_skin_image",
    "to_rgb_array",
    "verify_md5",
    "write_synthetic_dog_cases",
    "write_synthetic_multilabel",
]
