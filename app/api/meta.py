"""The API's description of itself: /openapi.json (its Swagger UI is app.api.pages)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.web.access import GuardedRoute

# Readers may read the description of the API, as they may read the data.
router = APIRouter(route_class=GuardedRoute, include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema
