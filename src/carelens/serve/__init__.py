"""The HTTP service (FastAPI): API, audit log, metrics, web page. No torch."""

from carelens.serve.app import create_app
from carelens.serve.settings import ServeSettings
from carelens.serve.smoke import SmokeCheck, smoke

__all__ = ["ServeSettings", "SmokeCheck", "create_app", "smoke"]
