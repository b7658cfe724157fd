"""The model bundle: one self-describing, verified artifact. Loading needs no torch."""

from carelens.bundle._load import Bundle, load_bundle, make_session
from carelens.bundle._manifest import FORMAT_VERSION, BundleSpec
from carelens.errors import BundleError

__all__ = ["FORMAT_VERSION", "Bundle", "BundleError", "BundleSpec", "load_bundle", "make_session"]
