"""Bundles you can trust: Ed25519 signatures over a bundle's manifest (bundle.json, which holds the sha256 of
every other file; a symptom bundle's symptoms.json, which holds the whole model).

``carelens keys generate`` makes a key pair, ``carelens keys sign BUNDLE`` (or ``carelens export --sign``) writes
``bundle.sig`` beside the manifest, and a service started with trusted public keys refuses a bundle that is
unsigned or signed by another key. The integrity digest alone catches corruption; only a signature catches
tampering.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from carelens.errors import BundleError, ConfigError

__all__ = ["SIGNATURE_FILE", "generate_keys", "key_id", "load_trusted_keys", "sign_bundle", "verify_signature"]

SIGNATURE_FILE = "bundle.sig"
MANIFESTS = ("bundle.json", "symptoms.json")  # what a signature covers: the first of these the folder holds


def _manifest(folder: Path) -> Path:
    found = next((folder / m for m in MANIFESTS if (folder / m).is_file()), None)
    if found is None:
        raise BundleError(f"{folder} holds no {' or '.join(MANIFESTS)}: not a bundle folder")
    return found


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw public key: names the key without revealing anything."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keys(out: Path) -> tuple[Path, Path]:
    """Write ``private.pem`` (mode 600) and ``public.pem`` into ``out``; refuses to overwrite a private key."""
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / "private.pem", out / "public.pem"
    if private_path.exists():
        raise ConfigError(f"{private_path} exists; choose another folder (a signing key is never overwritten)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key; make one with `carelens keys generate`")
    return key


def sign_bundle(folder: Path, private_key: Path) -> Path:
    """Sign the bundle's manifest (``bundle.json``; ``symptoms.json`` for a symptom bundle) with the Ed25519 key in
    ``private_key``; writes ``bundle.sig``."""
    key = _private_key(private_key)
    signature = key.sign(_manifest(folder).read_bytes())
    path = folder / SIGNATURE_FILE
    path.write_text(json.dumps({"algorithm": "ed25519", "key_id": key_id(key.public_key()),
                                "signature": base64.b64encode(signature).decode()}), encoding="utf-8")
    return path


def load_trusted_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    """Every ``*.pem`` public key in ``folder``, by key id (ConfigError when there is none)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for p in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
        try:
            key = serialization.load_pem_public_key(p.read_bytes())
        except ValueError:
            continue  # a private key or another file: not a trusted public key
        if isinstance(key, Ed25519PublicKey):
            keys[key_id(key)] = key
    if not keys:
        raise ConfigError(f"no Ed25519 public key (*.pem) in {folder}; copy the public.pem of `carelens keys generate` "
                          "there, or unset CARELENS_TRUSTED_KEYS_DIR")
    return keys


def verify_signature(folder: Path, trusted: dict[str, Ed25519PublicKey]) -> str:
    """The id of the trusted key that signed the folder's manifest; BundleError for anything else."""
    sig_path = folder / SIGNATURE_FILE
    if not sig_path.is_file():
        raise BundleError("bundle is not signed, and this service accepts only signed bundles "
                          "(sign it with `carelens keys sign BUNDLE --key private.pem`)")
    try:
        doc = json.loads(sig_path.read_text(encoding="utf-8"))
        kid, signature = str(doc["key_id"]), base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"{SIGNATURE_FILE} is malformed; sign the bundle again") from None
    key = trusted.get(kid)
    if key is None:
        raise BundleError(f"bundle is signed by key {kid}, which this service does not trust")
    try:
        manifest = _manifest(folder)
        key.verify(signature, manifest.read_bytes())
    except InvalidSignature:
        raise BundleError(f"the bundle's signature does not match {manifest.name}: it was altered after signing") from None
    return kid
