"""The public surface is pinned: changing it is a deliberate act."""

import carelens
import carelens.data
import carelens.labels


def test_public_api() -> None:
    assert carelens.__all__ == ["CarelensError", "__version__"]
    assert set(carelens.labels.__all__) == {
        "SEVERITIES", "TRIAGE_LEVELS", "ClassSpec", "LabelSpec", "MergeRule", "builtin_specs", "load_spec",
        "triage_rank",
    }
    assert set(carelens.data.__all__) == {
        "HAM10000_FORMAT", "IMAGE_SUFFIXES", "MEDMNIST", "SPLIT_NAMES", "AuditReport", "ClassAudit", "Dataset",
        "Example", "ManifestFormat", "ScanResult", "Splits", "UnreadableImageWarning", "audit_dataset",
        "decode_image", "fetch_medmnist", "groups_from_pairs", "load_splits", "make_splits", "md5sum",
        "near_duplicate_pairs", "open_dataset", "read_folder", "read_image", "read_manifest", "read_medmnist",
        "scan_dataset", "split_dataset", "to_rgb_array", "verify_md5",
    }
    for mod in (carelens, carelens.data, carelens.labels):
        for name in mod.__all__:
            assert hasattr(mod, name), name
