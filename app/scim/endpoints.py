"""/scim/v2: Users, Groups and searches (RFC 7644), on the API's tokens and use cases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from scim2_models import Context, Group, ListResponse, ResponseParameters, SearchRequest
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
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
from app.service.scim_groups import ScimGroup, ScimGroupView
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


# --- Users ----------------------------------------------------------------------------------


def _user(view: ScimUserView, request: Request, parameters: ResponseParameters[Any]) -> Response:
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
    parameters = attributes(dict(request.query_params))
    body = await read_body(request)
    user = user_from_scim(parse(UserModel, body, Context.RESOURCE_CREATION_REQUEST))
    view = await scim_users.create_user(session, actor=actor, user=user)
    response = _user(view, request, parameters)
    response.status_code = 201
    response.headers["Location"] = f"{base(request)}/Users/{view.user.userid}"
    return response


@router.get("/Users/{userid}")
async def get_user(userid: str, request: Request, session: ReaderSession) -> Response:
    """One user; 304 when If-None-Match names its ETag."""
    parameters = attributes(dict(request.query_params))
    view = await scim_users.get_user(session, userid=userid)
    if (unchanged := not_modified(request, view.etag)) is not None:
        return unchanged
    return _user(view, request, parameters)


def _same_user_name(wanted: ScimUser) -> Callable[[ScimUser], ScimUser]:
    return lambda current: same_user_name(current, wanted)


async def _change_user(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    userid: str,
    change: Callable[[ScimUser], ScimUser],
    action: str,
) -> Response:
    view = await scim_users.change_user(
        session,
        actor=actor,
        userid=userid,
        change=change,
        action=action,
        if_match=if_match(request),
    )
    return _user(view, request, attributes(dict(request.query_params)))


@router.put("/Users/{userid}")
async def replace_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Replace a user's attributes (userName cannot change); If-Match honoured."""
    body = await read_body(request)
    wanted = user_from_scim(parse(UserModel, body, Context.RESOURCE_REPLACEMENT_REQUEST))
    return await _change_user(
        request, session, actor, userid, _same_user_name(wanted), "scim.user.replace"
    )


@router.patch("/Users/{userid}")
async def patch_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Apply a PatchOp to a user: all its operations, or none."""
    change = user_change(await read_body(request))
    return await _change_user(request, session, actor, userid, change, "scim.user.patch")


@router.delete("/Users/{userid}")
async def delete_user(
    userid: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Delete a user and its memberships."""
    await core_users.delete_user(session, actor=actor, userid=userid, if_match=if_match(request))
    return Response(status_code=204)


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
    if not wants(parameters, "members"):
        return None
    limit: int = request.app.state.settings.max_list_length
    return limit


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
    parameters = attributes(dict(request.query_params))
    body = await read_body(request)
    group = group_from_scim(parse(Group, body, Context.RESOURCE_CREATION_REQUEST))
    view = await scim_groups.create_group(
        session, actor=actor, group=group, members_limit=request.app.state.settings.max_list_length
    )
    response = await _group(view, request, parameters)
    response.status_code = 201
    response.headers["Location"] = f"{base(request)}/Groups/{view.name}"
    return response


@router.get("/Groups/{name}")
async def get_group(name: str, request: Request, session: ReaderSession) -> Response:
    """One group; 304 when If-None-Match names its ETag."""
    parameters = attributes(dict(request.query_params))
    view = await scim_groups.get_group(
        session, name=name, members_limit=members_limit(request, parameters)
    )
    if (unchanged := not_modified(request, view.etag)) is not None:
        return unchanged
    return await _group(view, request, parameters)


async def _change_group(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    name: str,
    change: Callable[[ScimGroup], ScimGroup],
    action: str,
) -> Response:
    view = await scim_groups.change_group(
        session,
        actor=actor,
        name=name,
        change=change,
        action=action,
        members_limit=request.app.state.settings.max_list_length,
        if_match=if_match(request),
    )
    return await _group(view, request, attributes(dict(request.query_params)))


@router.put("/Groups/{name}")
async def replace_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Replace a group's displayName, externalId and members; If-Match honoured."""
    body = await read_body(request)
    wanted = group_from_scim(parse(Group, body, Context.RESOURCE_REPLACEMENT_REQUEST))
    return await _change_group(
        request, session, actor, name, lambda _current: wanted, "scim.group.replace"
    )


@router.patch("/Groups/{name}")
async def patch_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Apply a PatchOp to a group: all its operations, or none."""
    change = group_change(await read_body(request))
    return await _change_group(request, session, actor, name, change, "scim.group.patch")


@router.delete("/Groups/{name}")
async def delete_group(
    name: str, request: Request, session: WriterSession, actor: CurrentActor
) -> Response:
    """Delete a group (its members stay users)."""
    await core_groups.delete_group(session, actor=actor, name=name, if_match=if_match(request))
    return Response(status_code=204)


# --- Search across both resource types (RFC 7644 §3.4.3) ------------------------------------


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
