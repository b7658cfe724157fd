"""The HTTP service (FastAPI): API, audit log, metrics, web page. No torch."""

from carelens.serve.app import create_app
from carelens.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
