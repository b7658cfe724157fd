"""carelens: trustworthy triage models from labelled medical and veterinary images."""

import os

from carelens.errors import CarelensError

# carelens contacts no network unless a command asks it to (a download). albumentations asks PyPI for its latest
# version on import unless told not to: a request from a clinic's machine on every training command, and a 2 s
# stall where there is no network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
__all__ = ["CarelensError", "__version__"]
