"""One APIRouter per area of the API; :func:`carelens.serve.create_app` includes them all."""

from carelens.serve.routers import chat, feedback, models, ops, page, triage

__all__ = ["chat", "feedback", "models", "ops", "page", "triage"]
