"""/whoami: the caller as the API sees it, so that a client can show only what it may do."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.api.docs import problem_responses
from app.web.access import CurrentActor, GuardedRoute

router = APIRouter(tags=["whoami"], route_class=GuardedRoute)


class Caller(BaseModel):
    """The token's name and role; with auth disabled, `anonymous` acting as `admin`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci", "role": "writer"}]})

    name: str
    role: Literal["reader", "writer", "admin"]


@router.get("/whoami", response_model=Caller, responses=problem_responses())
async def whoami(actor: CurrentActor) -> Caller:
    """Who the caller is: the name and role of its token (any valid token may ask)."""
    return Caller(name=actor.name, role=actor.role.name)
