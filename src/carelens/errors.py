"""The one root of every error carelens raises on purpose.

Each message names the input, what was expected, what was found and what to do, so that the CLI
(and later the service) can show it as it is, in one line, without a stack trace.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "CarelensError",
    "ChecksumError",
    "ConfigError",
    "DataError",
    "FactsError",
    "ImageReadError",
    "ImageTooLargeError",
    "LabelSpecError",
    "MissingExtraError",
    "NotAnImageError",
    "NotFittedError",
    "NothingRecognisedError",
]


class CarelensError(Exception):
    """Root of every carelens error. Catch this one at the edges (CLI, service)."""


class ConfigError(CarelensError, ValueError):
    """A setting or argument is invalid; raised before any work starts."""


class DataError(CarelensError):
    """A dataset cannot be read as given (missing folder, malformed manifest, empty split)."""


class ImageReadError(DataError):
    """One image file cannot be decoded (truncated, empty, not an image, unsupported mode)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class ImageTooLargeError(ImageReadError):
    """The image has more pixels than the limit (a decompression bomb, or a photo too large to assess)."""


class NotAnImageError(ImageReadError):
    """The bytes are not in an image format carelens reads."""


class FactsError(ConfigError):
    """Clinical facts that a model cannot use: an unknown name, a value out of range or an unseen category,
    or facts for a model trained without them."""


class NothingRecognisedError(DataError):
    """A symptom description in which no symptom of the vocabulary was recognised."""


class LabelSpecError(CarelensError, ValueError):
    """A label spec is malformed or does not match the data's labels."""


class ChecksumError(DataError):
    """A downloaded or local file does not have the published checksum."""


class NotFittedError(CarelensError, ValueError):
    """An estimator was used before `fit` was called."""


class BundleError(CarelensError):
    """A bundle is missing, corrupt, altered, or from an incompatible carelens."""


class MissingExtraError(CarelensError):
    """An optional part of carelens is used but its packages are not installed (e.g. ``carelens[ecg]``)."""
