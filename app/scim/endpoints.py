"""/scim/v2: Users, Groups and searches (RFC 7644), on the API's tokens and use cases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from scim2_models import Context, Group, ListResponse, ResponseParameters, SearchRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.preconditions import IfMatch
from app.predicates import Predicate
from app.scim import filters
from app.scim.common import (
    Listing,
    ScimRoute,
    ScimSearchRoute,
    asks_for,
    attributes,
    base,
    if_match,
    listing,
    max_members,
    not_modified,
    read_body,
    respond,
    wants,
)
from app.scim.discovery_router import router as discovery_router
from app.scim.errors import PREFIX, ScimError
from app.scim.patch import group_change, same_user_name, user_change
from app.scim.resources import (
    UserModel,
    group_from_scim,
    group_to_scim,
    parse,
    user_from_scim,
    user_to_scim,
)
from app.service import groups as core_groups
from app.service import scim_groups, scim_users
from app.service import users as core_users
from app.service.scim_groups import ScimGroupView
from app.service.scim_users import ScimUser, ScimUserView
from app.web.access import CurrentActor
from app.web.sessions import ReaderSession, WriterSession

router = APIRouter(prefix=PREFIX, route_class=ScimRoute, include_in_schema=False)
search_router = APIRouter(prefix=PREFIX, route_class=ScimSearchRoute, include_in_schema=False)
router.routes.extend(discovery_router.routes)


def _dump(resource: Any, context: Context, parameters: ResponseParameters[Any]) -> dict[str, Any]:
    body: dict[str, Any] = resource.model_dump(scim_ctx=context, response_parameters=parameters)
    return body


def _page(resources: list[Any], total: int, asked: Listing, model: Any) -> dict[str, Any]:
    page = ListResponse[model](
        total_results=total,
        start_index=asked.start,
        items_per_page=len(resources),
        resources=resources,
    )
    body: dict[str, Any] = page.model_dump(
        scim_ctx=Context.SEARCH_RESPONSE, response_parameters=asked.parameters
    )
    if not resources:
        body.pop("Resources", None)
    return body


def _search_source(search: SearchRequest[Any]) -> dict[str, Any]:
    return {
        "filter": search.filter and str(search.filter),
        "startIndex": search.start_index,
        "count": search.count,
        "attributes": ",".join(str(a) for a in search.attributes or []) or None,
        "excludedAttributes": ",".join(str(a) for a in search.excluded_attributes or []) or None,
    }


async def _search(request: Request) -> Listing:
    search = parse(SearchRequest, await read_body(request), Context.SEARCH_REQUEST)
    return listing(_search_source(search))


# --- What Users and Groups share ----------------------------------------------------------
#
# A resource type's answers differ in their service functions and serializers, not in
# their flow: each route below is the flow of one request, given what its type does.

Render = Callable[[Any, Request, ResponseParameters[Any]], Awaitable[Response]]


@dataclass(frozen=True)
class _ResourceType:
    """What one resource type does at each step of a request; the flows are shared."""

    endpoint: str
    model: Any
    from_scim: Callable[[Any], Any]
    create: Callable[[AsyncSession, Actor, Any, Request], Awaitable[Any]]
    read: Callable[[AsyncSession, str, Request, ResponseParameters[Any]], Awaitable[Any]]
    # The stored resource, changed by a function of its current state and logged as `action`.
    change: Callable[[AsyncSession, Actor, str, Any, str, Request], Awaitable[Any]]
    # PUT's change: the resource as sent, with what may not change kept as stored.
    replacing: Callable[[Any], Callable[[Any], Any]]
    patching: Callable[[Any], Callable[[Any], Any]]
    delete: Callable[[AsyncSession, Actor, str, IfMatch | None], Awaitable[None]]
    render: Render
    key: Callable[[Any], str]
    action: str


async def _create(
    kind: _ResourceType, request: Request, session: AsyncSession, actor: Actor
) -> Response:
    parameters = attributes(dict(request.query_params))
    body = await read_body(request)
    resource = kind.from_scim(parse(kind.model, body, Context.RESOURCE_CREATION_REQUEST))
    view = await kind.create(session, actor, resource, request)
    response = await kind.render(view, request, parameters)
    response.status_code = 201
    response.headers["Location"] = f"{base(request)}/{kind.endpoint}/{kind.key(view)}"
    return response


async def _get(kind: _ResourceType, key: str, request: Request, session: AsyncSession) -> Response:
    parameters = attributes(dict(request.query_params))
    view = await kind.read(session, key, request, parameters)
    if (unchanged := not_modified(request, view.etag)) is not None:
        return unchanged
    return await kind.render(view, request, parameters)


async def _change(
    kind: _ResourceType,
    key: str,
    request: Request,
    session: AsyncSession,
    actor: Actor,
    change: Callable[[Any], Any],
    verb: str,
) -> Response:
    view = await kind.change(session, actor, key, change, f"{kind.action}.{verb}", request)
    return await kind.render(view, request, attributes(dict(request.query_params)))


async def _replace(
    kind: _ResourceType, key: str, request: Request, session: AsyncSession, actor: Actor
) -> Response:
    body = await read_body(request)
    wanted = kind.from_scim(parse(kind.model, body, Context.RESOURCE_REPLACEMENT_REQUEST))
    return await _change(kind, key, request, session, actor, kind.replacing(wanted), "replace")


async def _patch(
    kind: _ResourceType, key: str, request: Request, session: AsyncSession, actor: Actor
) -> Response:
    change = kind.patching(await read_body(request))
    return await _change(kind, key, request, session, actor, change, "patch")


async def _delete(
    kind: _ResourceType, key: str, request: Request, session: AsyncSession, actor: Actor
) -> Response:
    await kind.delete(session, actor, key, if_match(request))
    return Response(status_code=204)


# --- Users ----------------------------------------------------------------------------------


async def _user(
    view: ScimUserView, request: Request, parameters: ResponseParameters[Any]
) -> Response:
    body = _dump(user_to_scim(view, base(request)), Context.RESOURCE_QUERY_RESPONSE, parameters)
    return respond(body, etag=view.etag)


async def _list_users(request: Request, session: AsyncSession, asked: Listing) -> Response:
    total, views = await scim_users.list_users(
        session,
        where=filters.user_filter(asked.filter),
        offset=asked.offset,
        limit=asked.count,
        timeout_ms=request.app.state.settings.search_timeout_ms,
    )

    def build() -> Response:
        resources = [user_to_scim(view, base(request)) for view in views]
        return respond(_page(resources, total, asked, UserModel))

    return await _off_the_loop(build, resources=len(views))


def _replacing_user(wanted: ScimUser) -> Callable[[ScimUser], ScimUser]:
    return lambda current: same_user_name(current, wanted)


USERS = _ResourceType(
    endpoint="Users",
    model=UserModel,
    from_scim=user_from_scim,
    create=lambda session, actor, user, _request: scim_users.create_user(
        session, actor=actor, user=user
    ),
    read=lambda session, userid, _request, _parameters: scim_users.get_user(session, userid=userid),
    change=lambda session, actor, userid, change, action, request: scim_users.change_user(
        session,
        actor=actor,
        userid=userid,
        change=change,
        action=action,
        if_match=if_match(request),
    ),
    replacing=_replacing_user,
    patching=user_change,
    delete=lambda session, actor, userid, condition: core_users.delete_user(
        session, actor=actor, userid=userid, if_match=condition
    ),
    render=_user,
    key=lambda view: str(view.user.userid),
    action="scim.user",
)


@router.get("/Users")
async def list_users(request: Request, session: ReaderSession) -> Response:
    """Users matching `filter`, a page of them (`startIndex`, `count`)."""
    return await _list_users(request, session, listing(dict(request.query_params)))


@search_router.post("/Users/.search")
async def search_users(request: Request, session: ReaderSession) -> Response:
    """The same as GET /Users, the query in a SearchRequest body."""
    return await _list_users(request, session, await _search(request))


@router.post("/Users")
async def create_user(request: Request, session: WriterSession, actor: CurrentActor) -> Response:
    """Create a user; 409 uniqueness if its userName is taken (ignoring case)."""
    return await _create(USERS, request, session, actor)


@router.get("/Users/{userid}")
async def get_user(userid: str, request: Request, session: ReaderSession) -> Response:
    """One user; 304 when If-None-Match names its ETag."""
    return await _get(USERS, userid, request, session)


@router.put("/Users/{userid}")
async def replace_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Replace a user's attributes (userName cannot change); If-Match honoured."""
    return await _replace(USERS, userid, request, session, actor)


@router.patch("/Users/{userid}")
async def patch_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Apply a PatchOp to a user: all its operations, or none."""
    return await _patch(USERS, userid, request, session, actor)


@router.delete("/Users/{userid}")
async def delete_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Delete a user and its memberships."""
    return await _delete(USERS, userid, request, session, actor)


# --- Groups ---------------------------------------------------------------------------------


def _group_resource(
    view: ScimGroupView, request: Request, parameters: ResponseParameters[Any]
) -> Group:
    return group_to_scim(
        view, base(request), member_display=asks_for(parameters, "members.display")
    )


# An answer with more members than this, or more resources than
# RESOURCES_ON_THREAD, is built on a worker thread: a model per member or
# resource and the JSON of them all would hold the event loop, and every
# other request with it, for as long as they take (a page of 1,000 users:
# some 400 ms). On the thread the loop still gets the interpreter every few
# milliseconds (sys.getswitchinterval).
BUILT_ON_THREAD = 1000
RESOURCES_ON_THREAD = 20


def members_limit(request: Request, parameters: ResponseParameters[Any]) -> int | None:
    """How many members an answer may carry in all; None when it shows none."""
    return max_members(request) if wants(parameters, "members") else None


async def _off_the_loop(
    build: Callable[[], Response], *, resources: int, groups: Sequence[ScimGroupView] = ()
) -> Response:
    """The answer `build` makes, on a thread when it has many resources or members."""
    members = sum(len(view.members or ()) for view in groups)
    if resources > RESOURCES_ON_THREAD or members > BUILT_ON_THREAD:
        return await asyncio.to_thread(build)
    return build()


async def _group(
    view: ScimGroupView, request: Request, parameters: ResponseParameters[Any]
) -> Response:
    def build() -> Response:
        resource = _group_resource(view, request, parameters)
        body = _dump(resource, Context.RESOURCE_QUERY_RESPONSE, parameters)
        return respond(body, etag=view.etag)

    return await _off_the_loop(build, resources=1, groups=[view])


async def _list_groups(request: Request, session: AsyncSession, asked: Listing) -> Response:
    total, views = await scim_groups.list_groups(
        session,
        where=filters.group_filter(asked.filter),
        offset=asked.offset,
        limit=asked.count,
        members_limit=members_limit(request, asked.parameters),
    )

    def build() -> Response:
        resources = [_group_resource(view, request, asked.parameters) for view in views]
        return respond(_page(resources, total, asked, Group))

    return await _off_the_loop(build, resources=len(views), groups=views)


GROUPS = _ResourceType(
    endpoint="Groups",
    model=Group,
    from_scim=group_from_scim,
    create=lambda session, actor, group, request: scim_groups.create_group(
        session, actor=actor, group=group, members_limit=max_members(request)
    ),
    read=lambda session, name, request, parameters: scim_groups.get_group(
        session, name=name, members_limit=members_limit(request, parameters)
    ),
    change=lambda session, actor, name, change, action, request: scim_groups.change_group(
        session,
        actor=actor,
        name=name,
        change=change,
        action=action,
        members_limit=max_members(request),
        if_match=if_match(request),
    ),
    # A group's every attribute may be replaced.
    replacing=lambda wanted: lambda _current: wanted,
    patching=group_change,
    delete=lambda session, actor, name, condition: core_groups.delete_group(
        session, actor=actor, name=name, if_match=condition
    ),
    render=_group,
    key=lambda view: str(view.name),
    action="scim.group",
)


@router.get("/Groups")
async def list_groups(request: Request, session: ReaderSession) -> Response:
    """Groups matching `filter`, a page of them (`startIndex`, `count`)."""
    return await _list_groups(request, session, listing(dict(request.query_params)))


@search_router.post("/Groups/.search")
async def search_groups(request: Request, session: ReaderSession) -> Response:
    """The same as GET /Groups, the query in a SearchRequest body."""
    return await _list_groups(request, session, await _search(request))


@router.post("/Groups")
async def create_group(request: Request, session: WriterSession, actor: CurrentActor) -> Response:
    """Create a group; its id derives from displayName; 409 uniqueness if that is taken."""
    return await _create(GROUPS, request, session, actor)


@router.get("/Groups/{name}")
async def get_group(name: str, request: Request, session: ReaderSession) -> Response:
    """One group; 304 when If-None-Match names its ETag."""
    return await _get(GROUPS, name, request, session)


@router.put("/Groups/{name}")
async def replace_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Replace a group's displayName, externalId and members; If-Match honoured."""
    return await _replace(GROUPS, name, request, session, actor)


@router.patch("/Groups/{name}")
async def patch_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Apply a PatchOp to a group: all its operations, or none."""
    return await _patch(GROUPS, name, request, session, actor)


@router.delete("/Groups/{name}")
async def delete_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Delete a group (its members stay users)."""
    return await _delete(GROUPS, name, request, session, actor)


# --- Search across both resource types (RFC 7644 section 3.4.3) --------------------------


def _filter_on(read: Callable[[str], Predicate | None], text: str) -> tuple[bool, Predicate | None]:
    """Whether the filter can apply to a resource type, and its predicate there.

    A filter naming an attribute a resource type lacks matches none of that type.
    """
    try:
        return True, read(text)
    except ScimError as exc:
        if exc.scim_type != "invalidFilter":
            raise
        return False, None


@search_router.post("/.search")
async def search_all(request: Request, session: ReaderSession) -> Response:
    """Users, then groups, matching a SearchRequest."""
    asked = await _search(request)
    (of_users, users_where), (of_groups, groups_where) = (True, None), (True, None)
    if asked.filter is not None:
        filters.parse(asked.filter)
        of_users, users_where = _filter_on(filters.user_filter, asked.filter)
        of_groups, groups_where = _filter_on(filters.group_filter, asked.filter)
        if not of_users and not of_groups:
            filters.user_filter(asked.filter)
    offset = asked.offset
    users: list[ScimUserView] = []
    groups: list[ScimGroupView] = []
    total = 0
    if of_users:
        users_total, users = await scim_users.list_users(
            session,
            where=users_where,
            offset=offset,
            limit=asked.count,
            timeout_ms=request.app.state.settings.search_timeout_ms,
        )
        total += users_total
        offset = max(offset - users_total, 0)
    if of_groups:
        groups_total, groups = await scim_groups.list_groups(
            session,
            where=groups_where,
            offset=offset,
            limit=asked.count - len(users),
            members_limit=members_limit(request, asked.parameters),
        )
        total += groups_total

    def build() -> Response:
        resources: list[Any] = [user_to_scim(view, base(request)) for view in users]
        resources += [_group_resource(view, request, asked.parameters) for view in groups]
        return respond(_page(resources, total, asked, UserModel | Group))

    return await _off_the_loop(build, resources=len(users) + len(groups), groups=groups)
