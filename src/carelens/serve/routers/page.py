"""The web page: upload a photo, give the clinical facts the model uses, describe symptoms."""

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def page() -> str:
    return (resources.files("carelens.serve") / "static" / "index.html").read_text(encoding="utf-8")
