"""/scim/v2: Users, Groups and discovery (RFC 7644), on the API's tokens and use cases."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from scim2_models import Context, Group, ListResponse, ResponseParameters, SearchRequest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api.auth import CurrentActor, GuardedRoute
from app.api.body import is_json, read_limited
from app.api.deps import ReaderSession, WriterSession
from app.api.problems import HTTPProblem
from app.auth import Role
from app.errors import Busy, DomainError
from app.preconditions import IfMatch
from app.scim import discovery, filters
from app.scim.errors import PREFIX, SCIM_JSON, ScimError, domain_error, invalid_value, scim_error
from app.scim.patch import group_change, user_change
from app.scim.resources import (
    UserModel,
    base_url,
    group_from_scim,
    group_to_scim,
    parse,
    user_from_scim,
    user_to_scim,
)
from app.service import groups as core_groups
from app.service import scim_groups, scim_users
from app.service import users as core_users
from app.service.scim_groups import ScimGroup
from app.service.scim_users import ScimUser

DEFAULT_COUNT = 100


class ScimRoute(GuardedRoute):
    """A guarded route whose every failure is a SCIM error (RFC 7644 §3.12), 401 and 403 too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def scim(request: Request) -> Response:
            try:
                return await handler(request)
            except ScimError as exc:
                return scim_error(request, exc.status, exc.detail, exc.scim_type)
            except DomainError as exc:
                return domain_error(request, exc)
            except PoolTimeout:
                return domain_error(request, Busy())
            except HTTPProblem as exc:
                return scim_error(request, exc.status, exc.detail, None, exc.headers)
            except RequestValidationError as exc:
                return scim_error(
                    request,
                    400,
                    f"The request is invalid: {exc.errors()[0]['msg']}.",
                    "invalidValue",
                )

        return scim


class ScimSearchRoute(ScimRoute):
    """POST /.search only reads: readers may."""

    least_role = Role.reader


router = APIRouter(prefix=PREFIX, route_class=ScimRoute, include_in_schema=False)
search_router = APIRouter(prefix=PREFIX, route_class=ScimSearchRoute, include_in_schema=False)


def _base(request: Request) -> str:
    return base_url(str(request.base_url))


def _respond(
    body: dict[str, Any], status: int = 200, etag: str | None = None, location: str | None = None
) -> Response:
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
    if location is not None:
        headers["Location"] = location
    return Response(json.dumps(body), status_code=status, headers=headers, media_type=SCIM_JSON)


async def _body(request: Request) -> Any:
    raw = await read_limited(request, request.app.state.settings.max_body_bytes)
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        raise ScimError(
            415, f"The body must be application/scim+json or application/json, not {content_type}."
        )
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScimError(400, f"The body is not valid JSON: {exc}.", "invalidSyntax") from None


def _if_match(request: Request) -> IfMatch | None:
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    return IfMatch(frozenset(tag.strip() for tag in header.split(",")))


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_value(f"{name} must be an integer, not {value!r}.") from None


def _listing(source: dict[str, Any]) -> tuple[str | None, int, int, ResponseParameters[Any]]:
    """filter, startIndex (1-based, >= 1), count (0..maxResults), the attributes asked for."""
    start = max(_int(source.get("startIndex"), "startIndex", 1), 1)
    count = min(max(_int(source.get("count"), "count", DEFAULT_COUNT), 0), discovery.MAX_RESULTS)
    text = source.get("filter")
    if text is not None and not isinstance(text, str):
        raise invalid_filter_type()
    return text or None, start, count, _attributes(source)


def invalid_filter_type() -> ScimError:
    return ScimError(400, "filter must be a string.", "invalidFilter")


def _attributes(source: dict[str, Any]) -> ResponseParameters[Any]:
    try:
        return ResponseParameters.model_validate(
            {k: source.get(k) for k in ("attributes", "excludedAttributes") if source.get(k)}
        )
    except ValueError as exc:
        raise invalid_value(f"attributes / excludedAttributes: {exc}") from None


def _wants(parameters: ResponseParameters[Any], attribute: str) -> bool:
    """Whether the response shows `attribute` (members are not even read otherwise)."""
    lowered = attribute.lower()
    if parameters.attributes:
        return any(
            str(a).lower().split(":")[-1].split(".")[0] == lowered for a in parameters.attributes
        )
    excluded = [str(a).lower().split(":")[-1] for a in parameters.excluded_attributes or []]
    return lowered not in excluded


def _dump(
    resource: Any, context: Context, parameters: ResponseParameters[Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = resource.model_dump(scim_ctx=context, response_parameters=parameters)
    return body


def _page(
    resources: list[Any], total: int, start: int, model: Any, parameters: ResponseParameters[Any]
) -> dict[str, Any]:
    page = ListResponse[model](
        total_results=total, start_index=start, items_per_page=len(resources), resources=resources
    )
    body: dict[str, Any] = page.model_dump(
        scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters
    )
    if not resources:
        body.pop("Resources", None)
    return body


# --- Discovery ------------------------------------------------------------------------------


@router.get("/ServiceProviderConfig")
async def service_provider_config(request: Request) -> Response:
    return _respond(discovery.service_provider_config(_base(request)))


def _listed(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


@router.get("/ResourceTypes")
async def resource_types(request: Request) -> Response:
    return _respond(_listed(list(discovery.resource_types(_base(request)).values())))


@router.get("/ResourceTypes/{name}")
async def resource_type(name: str, request: Request) -> Response:
    found = discovery.resource_types(_base(request)).get(name)
    if found is None:
        raise ScimError(404, f"There is no resource type {name!r}: there are User and Group.")
    return _respond(found)


@router.get("/Schemas")
async def schemas(request: Request) -> Response:
    return _respond(_listed(list(discovery.schemas(_base(request)).values())))


@router.get("/Schemas/{urn}")
async def schema(urn: str, request: Request) -> Response:
    found = discovery.schemas(_base(request)).get(urn)
    if found is None:
        raise ScimError(404, f"There is no schema {urn!r} here.")
    return _respond(found)


# --- Users ----------------------------------------------------------------------------------


def _user(
    view: scim_users.ScimUserView,
    request: Request,
    parameters: ResponseParameters[Any] | None = None,
) -> dict[str, Any]:
    return _dump(user_to_scim(view, _base(request)), Context.RESOURCE_QUERY_RESPONSE, parameters)


async def _list_users(request: Request, session: Any, source: dict[str, Any]) -> Response:
    text, start, count, parameters = _listing(source)
    total, views = await scim_users.list_users(
        session, where=filters.user_condition(text), offset=start - 1, limit=count
    )
    resources = [user_to_scim(view, _base(request)) for view in views]
    return _respond(_page(resources, total, start, UserModel, parameters))


@router.get("/Users")
async def list_users(request: Request, session: ReaderSession) -> Response:
    return await _list_users(request, session, dict(request.query_params))


@search_router.post("/Users/.search")
async def search_users(request: Request, session: ReaderSession) -> Response:
    search = parse(SearchRequest, await _body(request), Context.SEARCH_REQUEST)
    return await _list_users(request, session, _search_source(search))


def _search_source(search: SearchRequest[Any]) -> dict[str, Any]:
    return {
        "filter": search.filter and str(search.filter),
        "startIndex": search.start_index,
        "count": search.count,
        "attributes": ",".join(str(a) for a in search.attributes or []) or None,
        "excludedAttributes": ",".join(str(a) for a in search.excluded_attributes or []) or None,
    }


@router.post("/Users")
async def create_user(request: Request, session: WriterSession, actor: CurrentActor) -> Response:
    user = user_from_scim(parse(UserModel, await _body(request), Context.RESOURCE_CREATION_REQUEST))
    view = await scim_users.create_user(session, actor=actor, user=user)
    location = f"{_base(request)}/Users/{view.user.userid}"
    return _respond(_user(view, request), 201, view.etag, location)


@router.get("/Users/{userid}")
async def get_user(userid: str, request: Request, session: ReaderSession) -> Response:
    parameters = _attributes(dict(request.query_params))
    view = await scim_users.get_user(session, userid=userid)
    if request.headers.get("if-none-match") == view.etag:
        return Response(status_code=304, headers={"ETag": view.etag})
    return _respond(_user(view, request, parameters), etag=view.etag)


@router.put("/Users/{userid}")
async def replace_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    wanted = user_from_scim(
        parse(UserModel, await _body(request), Context.RESOURCE_REPLACEMENT_REQUEST)
    )

    def change(current: ScimUser) -> ScimUser:
        if wanted.userid != current.userid:
            raise ScimError(
                400,
                f"userName is the user's id and cannot change from {current.userid!r}.",
                "mutability",
            )
        return wanted

    view = await scim_users.change_user(
        session,
        actor=actor,
        userid=userid,
        change=change,
        action="scim.user.replace",
        if_match=_if_match(request),
    )
    return _respond(_user(view, request), etag=view.etag)


@router.patch("/Users/{userid}")
async def patch_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    change = user_change(await _body(request))
    view = await scim_users.change_user(
        session,
        actor=actor,
        userid=userid,
        change=change,
        action="scim.user.patch",
        if_match=_if_match(request),
    )
    return _respond(_user(view, request), etag=view.etag)


@router.delete("/Users/{userid}")
async def delete_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    await core_users.delete_user(session, actor=actor, userid=userid, if_match=_if_match(request))
    return Response(status_code=204)


# --- Groups ---------------------------------------------------------------------------------


def _group(
    view: scim_groups.ScimGroupView,
    request: Request,
    parameters: ResponseParameters[Any] | None = None,
) -> dict[str, Any]:
    return _dump(group_to_scim(view, _base(request)), Context.RESOURCE_QUERY_RESPONSE, parameters)


async def _list_groups(request: Request, session: Any, source: dict[str, Any]) -> Response:
    text, start, count, parameters = _listing(source)
    total, views = await scim_groups.list_groups(
        session,
        where=filters.group_condition(text),
        offset=start - 1,
        limit=count,
        with_members=_wants(parameters, "members"),
    )
    resources = [group_to_scim(view, _base(request)) for view in views]
    return _respond(_page(resources, total, start, Group, parameters))


@router.get("/Groups")
async def list_groups(request: Request, session: ReaderSession) -> Response:
    return await _list_groups(request, session, dict(request.query_params))


@search_router.post("/Groups/.search")
async def search_groups(request: Request, session: ReaderSession) -> Response:
    search = parse(SearchRequest, await _body(request), Context.SEARCH_REQUEST)
    return await _list_groups(request, session, _search_source(search))


@router.post("/Groups")
async def create_group(request: Request, session: WriterSession, actor: CurrentActor) -> Response:
    group = group_from_scim(parse(Group, await _body(request), Context.RESOURCE_CREATION_REQUEST))
    view = await scim_groups.create_group(session, actor=actor, group=group)
    location = f"{_base(request)}/Groups/{view.name}"
    return _respond(_group(view, request), 201, view.etag, location)


@router.get("/Groups/{name}")
async def get_group(name: str, request: Request, session: ReaderSession) -> Response:
    parameters = _attributes(dict(request.query_params))
    view = await scim_groups.get_group(
        session, name=name, with_members=_wants(parameters, "members")
    )
    if request.headers.get("if-none-match") == view.etag:
        return Response(status_code=304, headers={"ETag": view.etag})
    return _respond(_group(view, request, parameters), etag=view.etag)


@router.put("/Groups/{name}")
async def replace_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    wanted = group_from_scim(
        parse(Group, await _body(request), Context.RESOURCE_REPLACEMENT_REQUEST)
    )

    def change(current: ScimGroup) -> ScimGroup:
        return wanted

    view = await scim_groups.change_group(
        session,
        actor=actor,
        name=name,
        change=change,
        action="scim.group.replace",
        if_match=_if_match(request),
    )
    return _respond(_group(view, request), etag=view.etag)


@router.patch("/Groups/{name}")
async def patch_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    change = group_change(await _body(request))
    view = await scim_groups.change_group(
        session,
        actor=actor,
        name=name,
        change=change,
        action="scim.group.patch",
        if_match=_if_match(request),
    )
    return _respond(_group(view, request), etag=view.etag)


@router.delete("/Groups/{name}")
async def delete_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    await core_groups.delete_group(session, actor=actor, name=name, if_match=_if_match(request))
    return Response(status_code=204)


# --- Search across both resource types (RFC 7644 §3.4.3) ------------------------------------


def _condition_or_none(translate: Callable[[str | None], Any], text: str | None) -> Any:
    """A filter naming an attribute a resource type lacks matches none of that type."""
    try:
        return translate(text)
    except ScimError as exc:
        if exc.scim_type != "invalidFilter":
            raise
        return None


@search_router.post("/.search")
async def search_all(request: Request, session: ReaderSession) -> Response:
    search = parse(SearchRequest, await _body(request), Context.SEARCH_REQUEST)
    text, start, count, parameters = _listing(_search_source(search))
    if text is not None:
        filters.parse(text)
    on_users = _condition_or_none(filters.user_condition, text)
    on_groups = _condition_or_none(filters.group_condition, text)
    if on_users is None and on_groups is None:
        filters.user_condition(text)
    base, offset = _base(request), start - 1
    resources: list[Any] = []
    total = 0
    if on_users is not None:
        users_total, users = await scim_users.list_users(
            session, where=on_users, offset=offset, limit=count
        )
        total += users_total
        resources += [user_to_scim(view, base) for view in users]
        offset = max(offset - users_total, 0)
    if on_groups is not None:
        groups_total, groups = await scim_groups.list_groups(
            session,
            where=on_groups,
            offset=offset,
            limit=count - len(resources),
            with_members=_wants(parameters, "members"),
        )
        total += groups_total
        resources += [group_to_scim(view, base) for view in groups]
    return _respond(_page(resources, total, start, UserModel | Group, parameters))
