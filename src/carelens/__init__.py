"""carelens: trustworthy triage models from labelled medical and veterinary images."""

from carelens.errors import CarelensError

__version__ = "0.1.0"
__all__ = ["CarelensError", "__version__"]
