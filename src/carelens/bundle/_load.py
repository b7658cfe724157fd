"""Loading a bundle: format version, file hashes, self-test; any failure says what to do. No torch."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from carelens.bundle._manifest import (
    FORMAT_VERSION,
    HEAD_FILE,
    OLDEST_READABLE_FORMAT,
    REQUIRED_FILES,
    BundleSpec,
    DecisionParams,
    Identified,
)
from carelens.calibrate import ConformalClassifier, MultilabelCalibrator, OODGate, TemperatureScaler
from carelens.errors import BundleError
from carelens.fusion import FactsFusion
from carelens.hashing import check_digests, integrity_digest
from carelens.policy import DecisionPolicy
from carelens.preprocess import PreprocessConfig
from carelens.signing import SIGNATURE_FILE, verify_signature
from carelens.tasks import OutputLayout

__all__ = ["Bundle", "int8_instructions", "load_bundle", "make_session", "run_selftest", "selftest_input"]


def make_session(model: Path | bytes, threads: int | None = None, exact_int8: bool = True) -> Any:
    """An ONNX Runtime session tuned for a small CPU: intra-op threads = cores, full graph optimisation. ``model``:
    an ONNX file, or a serialised graph in memory. ``exact_int8=False``: ONNX Runtime's default integer kernels (saturating without VNNI, below; for measuring)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # (Measured: turning ORT's thread spinning off costs more than it saves; the numpy work after a run
    # is kept off ORT's cores by limiting BLAS to one thread in the engine instead. Again on the int8 bench bundle,
    # 6 interleaved rounds: end to end p50 8.32 ms as is, 8.69 with spinning off, 8.32 with spinning stopped after
    # each run (session.force_spinning_stop); folder throughput 202, 190 and 168 images/s.)
    # No memory pattern (ORT's plan of one arena block per input shape): peak RSS of a serving process 187 -> 161 MB
    # (int8 bundle) and 255 -> 230 MB (fp32), no slower in 12 interleaved rounds (int8 batch 1: median 4.00 vs
    # 4.31 ms, batch 16: 3.25 vs 3.40 ms per image; `python bench/inference.py ort_mem_pattern`).
    opts.enable_mem_pattern = False
    # int8 graphs compute the same on every x86 CPU: without VNNI (AVX2, AVX-512 before VNNI) ONNX Runtime's
    # uint8 x int8 kernels add products in pairs into int16, which saturates for weights beyond 7 bits; this option
    # has it use its exact uint8 x uint8 kernels there (a no-op with VNNI or AMX, and for fp32 graphs). Measured on an
    # AVX2 AMD EPYC, on the `inference` bench's int8 model and 1,500 HAM10000 images it never saw: top-1 agreement
    # with fp32 0.797 -> 0.923 (logit RMSE 0.181 -> 0.068, what VNNI hosts get), model time 7.1 -> 9.1 ms (fp32 10.0).
    # Without it, a bundle calibrated on one CPU would be served by another computing different logits.
    # Only there: it is not free with VNNI. On an AVX-512 VNNI AMD EPYC the same int8 model took 4.9 ms with it and
    # 2.5 ms without (fp32 4.9 ms), the logits of 64 inputs identical to the last bit (max |difference| 0.0).
    if exact_int8 and int8_instructions() not in ("vnni", "amx"):
        opts.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


@functools.cache
def int8_instructions() -> str:
    """This CPU's 8-bit dot-product instructions, which decide how fast (not, with :func:`make_session`, what) an
    int8 graph computes: "amx", "vnni", "none" (an x86 CPU with neither) or "unknown" (no /proc/cpuinfo flags)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), None)
    if flags is None:
        return "unknown"
    return "amx" if "amx_int8" in flags else "vnni" if flags & {"avx512_vnni", "avx_vnni"} else "none"


@dataclass
class Bundle(Identified):
    """A loaded, verified bundle: the ONNX session and every fitted object the decision needs."""

    path: Path
    spec: BundleSpec
    session: Any  # onnxruntime.InferenceSession (imported only when a bundle is loaded)
    temperature: TemperatureScaler
    conformal: ConformalClassifier | None  # multiclass
    ood: OODGate
    head_weight: np.ndarray | None  # (outputs, C) for class-activation maps (condition k: row k); None: no fmap
    head_bias: np.ndarray | None
    facts: FactsFusion | None = None  # when the model fuses clinical facts
    signed_by: str | None = None  # id of the trusted key that signed it (when keys were given)
    extracted: Path | None = None  # the temporary folder a .zip bundle was unpacked into
    multilabel: MultilabelCalibrator | None = None  # multi-label: per-condition calibration, risk control
    layout: OutputLayout | None = None  # multi-label: where conditions and severities sit in the logits

    def policy(self, **overrides: Any) -> DecisionPolicy:
        """The decision policy the bundle ships (defaults for older bundles), with a deployment's overrides."""
        return (self.spec.decision or DecisionParams()).policy(**overrides)

    @property
    def alpha(self) -> float:
        """The conformal level: miscoverage of the prediction set, or the bounded false-negative rate."""
        fitted = self.multilabel if self.multilabel is not None else self.conformal
        assert fitted is not None  # BundleSpec requires one per task
        return float(fitted.alpha)

    def close(self) -> None:
        """Release the bundle: a zip bundle's unpacked folder is deleted."""
        if self.extracted is not None:
            shutil.rmtree(self.extracted, ignore_errors=True)
            self.extracted = None

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.spec.preprocess

    def run(self, batch: np.ndarray, fmap: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(logits, features, feature map or None) for a preprocessed batch (N, 3, S, S) float32. ``fmap=False``: the
        feature map (heatmaps only) is not fetched, None (ONNX Runtime copies 250 KB an image less: 0.08 ms of 4.9
        at batch 1, 0.8 ms of 96 for 32 images, int8 224 px)."""
        io = self.spec.model_io
        wanted = io.outputs if fmap else io.outputs[:2]
        names = list(dict.fromkeys(wanted))  # an imported model without features: its logits read twice
        got = dict(zip(names, self.session.run(names, {io.input: np.ascontiguousarray(batch, dtype=np.float32)}),
                       strict=True))
        return got[wanted[0]], got[wanted[1]], got[wanted[2]] if len(wanted) > 2 else None


# A bundle zip holds a handful of files; anything far beyond this is an archive bomb or not a bundle.
ZIP_MAX_MEMBERS = 16
ZIP_MAX_BYTES = 2 << 30  # uncompressed total
ZIP_MAX_RATIO = 50  # per member: ONNX weights and npz statistics hardly compress


def _unzip(path: Path) -> tuple[Path, Path]:
    """Unpack a bundle zip into a new temporary folder (limits on members, size and compression ratio);
    (the temporary folder, the bundle folder inside it)."""
    target = Path(tempfile.mkdtemp(prefix="carelens-bundle-"))
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > ZIP_MAX_MEMBERS:
                raise BundleError(f"{path.name} holds {len(infos)} entries; a bundle has at most {ZIP_MAX_MEMBERS}")
            total = 0
            for info in infos:
                if info.filename.startswith("/") or ".." in Path(info.filename).parts:
                    raise BundleError(f"{path.name}: unsafe path {info.filename!r} inside the zip")
                total += info.file_size
                if info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
                    raise BundleError(f"{path.name}: {info.filename} expands {info.file_size / max(info.compress_size, 1):.0f}"
                                      f"-fold (more than {ZIP_MAX_RATIO}); refusing a likely zip bomb")
            if total > ZIP_MAX_BYTES:
                raise BundleError(f"{path.name} expands to {total:,} bytes, over the {ZIP_MAX_BYTES:,}-byte limit")
            z.extractall(target)
        inner = list(target.rglob("bundle.json"))
        if len(inner) != 1:
            raise BundleError(f"{path.name}: expected exactly one bundle.json inside the zip, found {len(inner)}")
        return target, inner[0].parent
    except zipfile.BadZipFile as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise BundleError(f"{path.name} is not a valid zip file: {exc}") from None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def load_bundle(path: str | Path, *, threads: int | None = None, selftest: bool = True,
                trusted_keys: dict[str, Ed25519PublicKey] | None = None) -> Bundle:
    """Open a bundle directory or ``.zip`` and verify it.

    Args:
        trusted_keys: Ed25519 public keys by key id (:func:`load_trusted_keys`); when given, the bundle must
            carry a signature by one of them.

    Raises:
        BundleError: missing or unlisted files, a newer format, altered files, a missing or foreign signature,
            or a failed self-test.
    """
    p = Path(path)
    if not p.exists():
        raise BundleError(f"bundle {p} does not exist")
    if p.is_file() and p.suffix == ".zip":
        root, folder = _unzip(p)
        try:
            b = _load_folder(folder, p, threads, selftest, trusted_keys)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        b.extracted = root
        return b
    return _load_folder(p, p, threads, selftest, trusted_keys)


def _load_folder(folder: Path, p: Path, threads: int | None, selftest: bool,
                 trusted_keys: dict[str, Ed25519PublicKey] | None) -> Bundle:
    manifest = folder / "bundle.json"
    if not manifest.is_file():
        raise BundleError(f"{folder} is not a bundle: bundle.json is missing. Create one with `carelens export`.")
    try:
        raw = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest} is not valid JSON ({exc}); the bundle is corrupt. Re-export it.") from None
    fmt = raw.get("format_version") if isinstance(raw, dict) else None
    if not isinstance(fmt, int):
        raise BundleError(f"{manifest} has no format_version; it is not a carelens bundle")
    if fmt > FORMAT_VERSION:
        raise BundleError(
            f"bundle {p} has format version {fmt}, newer than the {FORMAT_VERSION} this carelens reads. "
            "Upgrade carelens (pip install -U carelens) to load it."
        )
    if fmt < OLDEST_READABLE_FORMAT:
        raise BundleError(f"bundle {p} has old format version {fmt}; re-export it with `carelens export`.")
    try:
        spec = BundleSpec.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{manifest} does not match the bundle format: {exc.errors()[0]['msg']} "
                          f"at {'.'.join(str(x) for x in exc.errors()[0]['loc'])}. Re-export the bundle.") from None
    # over the document as written (not as re-read): a bundle of an older format keeps verifying after
    # this carelens adds optional fields
    if spec.integrity != integrity_digest(raw):
        raise BundleError(f"{manifest} was modified after export (integrity check failed). "
                          "Re-export the bundle instead of editing bundle.json.")
    signed_by = verify_signature(folder, trusted_keys) if trusted_keys is not None else None
    missing = sorted(REQUIRED_FILES - set(spec.files) | ({HEAD_FILE} - set(spec.files) if spec.model_io.fmap else set()))
    if missing:
        raise BundleError(f"bundle {p} does not list {', '.join(missing)} in bundle.json; re-export it")
    known = {*spec.files, "bundle.json", SIGNATURE_FILE}
    unlisted = sorted(f.name for f in folder.iterdir() if f.name not in known and not f.name.startswith("."))
    if unlisted:
        raise BundleError(f"bundle {p} holds files that bundle.json does not list ({', '.join(unlisted)}); a bundle "
                          "loads only what its manifest vouches for. Remove them or re-export the bundle.")
    missing, changed = check_digests(folder, spec.files)
    if missing:
        raise BundleError(f"bundle {p} is missing {missing[0]}; re-export it")
    if changed:
        raise BundleError(f"{changed[0]} in bundle {p} does not match its recorded sha256: the file was altered or "
                          "corrupted. Re-export the bundle or restore the original file.")
    session = make_session(folder / "model.onnx", threads)
    weight = bias = None
    if spec.model_io.fmap:
        with np.load(folder / HEAD_FILE) as h:
            weight, bias = h["weight"], h["bias"]
    scaler = {"temperature": spec.temperature, "bias": spec.temperature_bias, "scale": spec.temperature_scale}
    b = Bundle(
        path=folder, spec=spec, session=session, temperature=TemperatureScaler.from_dict(scaler),
        conformal=ConformalClassifier.from_dict(spec.conformal.model_dump()) if spec.conformal else None,
        multilabel=MultilabelCalibrator.from_dict(spec.multilabel.calibrator_dict()) if spec.multilabel else None,
        layout=OutputLayout(tuple(spec.multilabel.severity_sizes), spec.multilabel.severity_head) if spec.multilabel else None,
        ood=OODGate.from_dict(spec.ood.model_dump(), folder / "ood.npz"),
        head_weight=weight, head_bias=bias, facts=FactsFusion.from_dict(spec.facts.fusion) if spec.facts else None,
        signed_by=signed_by,
    )
    if selftest:
        run_selftest(b)
    return b


def selftest_input(seed: int, shape: list[int]) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run_selftest(b: Bundle) -> None:
    st = b.spec.selftest
    logits, _, _ = b.run(selftest_input(st.seed, st.shape))
    diff = float(np.abs(logits - np.asarray(st.logits)).max())
    if not diff <= st.atol:
        raise BundleError(
            f"bundle {b.path} failed its self-test: logits differ by {diff:.2e} (allowed {st.atol:.0e}). "
            "The model file or this onnxruntime computes differently from export time; re-export the bundle "
            "or install the onnxruntime version recorded in bundle.json "
            f"({b.spec.versions.get('onnxruntime', '?')})."
        )
