"""One APIRouter per area of the API; :func:`carelens.serve.create_app` includes them all."""

from carelens.serve.routers import feedback, models, ops, page, triage

__all__ = ["feedback", "models", "ops", "page", "triage"]
