"""SCIM filters (RFC 7644 §3.4.2.2) as SQL conditions: parsed by scim2-models, never run in Python.

Every value reaches the database as a bound parameter; LIKE patterns are
escaped. Case-insensitive attributes compare casefold()ed keys stored beside
them, so that any script compares alike on SQLite (whose lower() is ASCII
only) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scim2_models import SCIMException, ScimFilter
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select, true

from app.models import Group, Membership, User, UserEmail
from app.names import ascii_lower
from app.repository.common import escape_like
from app.scim.errors import ScimError, invalid_filter
from app.timestamps import parse_timestamp

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_FILTER_LENGTH = 4096

Condition = ColumnElement[bool]
Op = CompareOperator


def parse(text: str) -> FilterNode:
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid_filter(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
    try:
        return ScimFilter(text).ast
    except SCIMException as exc:
        raise invalid_filter(f"The filter {text!r} is not valid: {exc.detail}.") from None


def _string(node: Comparison) -> str:
    if not isinstance(node.value, str):
        raise invalid_filter(f"{node.attr_path} compares with a string, not {node.value!r}.")
    if not node.value.isascii():
        try:
            node.value.encode()
        except UnicodeEncodeError:
            # A lone surrogate ("\ud800" in the filter): no database can hold it.
            raise invalid_filter(
                f"{node.attr_path} compares with text that is not Unicode."
            ) from None
    if any(ord(char) < 32 for char in node.value):
        # No stored value holds a control character (every text is checked on
        # the way in), so the comparison matches as one with U+0001 would;
        # U+0001 stands in because PostgreSQL text cannot carry U+0000.
        return "\x01"
    return node.value


def _text(column: Any, node: Comparison, value: str) -> Condition:
    """column <op> value for a text column whose stored form `value` is already in."""
    op = node.op
    if op == Op.eq:
        return column == value  # type: ignore[no-any-return]
    if op == Op.ne:
        return or_(column.is_(None), column != value)
    if op in (Op.co, Op.sw, Op.ew):
        escaped = escape_like(value)
        pattern = {
            Op.co: f"%{escaped}%",
            Op.sw: f"{escaped}%",
            Op.ew: f"%{escaped}",
        }[op]
        return column.like(pattern, escape="\\")  # type: ignore[no-any-return]
    raise invalid_filter(f"{node.attr_path} does not support {op.value}: only eq, ne, co, sw, ew.")


def _exact(column: Any) -> Callable[[Comparison], Condition]:
    return lambda node: _text(column, node, _string(node))


def _folded(column: Any) -> Callable[[Comparison], Condition]:
    return lambda node: _text(column, node, _string(node).casefold())


def _person_name(part: int) -> Callable[[Comparison], Condition]:
    """name.givenName (0) or name.familyName (1) over search_names: "given\\nfamily", casefolded.

    Neither part holds a newline, so a pattern placed before or after the one
    newline matches in that part only.
    """

    def compare(node: Comparison) -> Condition:
        v = escape_like(_string(node).casefold())
        if part == 0:
            patterns = {Op.eq: f"{v}\n%", Op.sw: f"{v}%\n%", Op.ew: f"%{v}\n%", Op.co: f"%{v}%\n%"}
        else:
            patterns = {Op.eq: f"%\n{v}", Op.sw: f"%\n{v}%", Op.ew: f"%\n%{v}", Op.co: f"%\n%{v}%"}
        column = User.search_names
        if node.op == Op.ne:
            return not_(column.like(patterns[Op.eq], escape="\\"))
        if node.op not in patterns:
            raise invalid_filter(
                f"{node.attr_path} does not support {node.op.value}: only eq, ne, co, sw, ew."
            )
        return column.like(patterns[node.op], escape="\\")

    return compare


def _boolean(column: Any) -> Callable[[Comparison], Condition]:
    def compare(node: Comparison) -> Condition:
        if not isinstance(node.value, bool) or node.op not in (Op.eq, Op.ne):
            raise invalid_filter(f"{node.attr_path} takes eq or ne with true or false.")
        return column == node.value if node.op == Op.eq else column != node.value  # type: ignore[no-any-return]

    return compare


def _moment(column: Any) -> Callable[[Comparison], Condition]:
    def compare(node: Comparison) -> Condition:
        try:
            moment = parse_timestamp(_string(node))
        except ValueError:
            raise invalid_filter(f"{node.attr_path} compares with a dateTime.") from None
        operators: dict[Op, Callable[[Any, Any], Condition]] = {
            Op.eq: lambda a, b: a == b,
            Op.ne: lambda a, b: a != b,
            Op.gt: lambda a, b: a > b,
            Op.ge: lambda a, b: a >= b,
            Op.lt: lambda a, b: a < b,
            Op.le: lambda a, b: a <= b,
        }
        if node.op not in operators:
            raise invalid_filter(f"{node.attr_path} does not support {node.op.value}.")
        return operators[node.op](column, moment)

    return compare


# Sub-attributes of a user's emails, inside EXISTS (... user_emails ...).
_EMAIL: dict[str, Callable[[Comparison], Condition]] = {
    "value": _folded(UserEmail.value_key),
    "type": lambda node: _text(func.lower(UserEmail.type), node, _string(node).lower()),
    "primary": _boolean(UserEmail.is_primary),
}
_EMAIL_PRESENT: dict[str, Condition] = {
    "value": true(),
    "type": UserEmail.type.is_not(None),
    "primary": UserEmail.is_primary.is_(True),
}
# A group's members, inside EXISTS (... memberships JOIN users ...).
_MEMBER: dict[str, Callable[[Comparison], Condition]] = {"value": _exact(User.userid)}
_MEMBER_PRESENT: dict[str, Condition] = {"value": true()}

Spec = tuple[
    dict[str, Callable[[Comparison], Condition]],  # single-valued attributes: "name.givenname"
    dict[str, Condition],  # their presence
]


class _Translator:
    def __init__(
        self,
        schema: str,
        attributes: Spec,
        multi: dict[str, tuple[Spec, Callable[[Condition], Condition]]],
    ) -> None:
        self.schema = schema
        self.attributes, self.present = attributes
        # name -> (sub-attributes, wrap: condition on one value -> condition on the resource)
        self.multi = multi

    def __call__(self, node: FilterNode) -> Condition:
        if isinstance(node, LogicalExpr):
            terms = [self(term) for term in node.terms]
            return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)
        if isinstance(node, Not):
            return not_(self(node.expr))
        if isinstance(node, ValuePath):
            (sub, sub_present), wrap = self._multi(node.attr_path)
            inner = _Translator(self.schema, (sub, sub_present), {})
            return wrap(inner(node.val_filter))
        if isinstance(node, (Comparison, Present)):
            return self._leaf(node)
        raise invalid_filter(f"The filter {node} is not supported.")

    def _multi(self, path: AttrPath) -> tuple[Spec, Callable[[Condition], Condition]]:
        self._check_uri(path)
        found = self.multi.get(path.attr.lower())
        if found is None or path.sub_attr is not None:
            raise invalid_filter(f"{path} cannot be filtered with [...] here.")
        return found

    def _check_uri(self, path: AttrPath) -> None:
        if path.uri is not None and path.uri.lower() != self.schema.lower():
            raise invalid_filter(f"{path}: this endpoint filters on {self.schema} only.")

    def _leaf(self, node: Comparison | Present) -> Condition:
        path = node.attr_path
        self._check_uri(path)
        name = path.attr.lower() + ("." + path.sub_attr.lower() if path.sub_attr else "")
        multi = self.multi.get(path.attr.lower())
        if multi is not None:
            (sub, sub_present), wrap = multi
            key = (path.sub_attr or "value").lower()
            if key not in sub:
                raise invalid_filter(f"{path} is not an attribute that can be filtered on.")
            if isinstance(node, Present):
                return wrap(sub_present[key])
            return wrap(sub[key](node))
        if isinstance(node, Present):
            if name not in self.present:
                raise invalid_filter(f"{path} is not an attribute that can be filtered on.")
            return self.present[name]
        if name not in self.attributes:
            raise invalid_filter(f"{path} is not an attribute that can be filtered on.")
        return self.attributes[name](node)


def _user_name(node: Comparison) -> Condition:
    # userName ignores case: it is stored lower-cased (A-Z only, as on the way in).
    return _text(User.userid, node, ascii_lower(_string(node)))


def _emails_of_user(condition: Condition) -> Condition:
    return exists(select(UserEmail.user_id).where(UserEmail.user_id == User.id, condition))


def _members_of_group(condition: Condition) -> Condition:
    return exists(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.group_id == Group.id, condition)
    )


def _groups_of_user(condition: Condition) -> Condition:
    return exists(
        select(Membership.group_id)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.user_id == User.id, condition)
    )


_USERS = _Translator(
    USER_SCHEMA,
    (
        {
            "id": _exact(User.userid),
            "username": _user_name,
            "externalid": _exact(User.external_id),
            "displayname": _folded(User.display_key),
            "name.givenname": _person_name(0),
            "name.familyname": _person_name(1),
            "active": _boolean(User.active),
            "meta.created": _moment(User.created_at),
            "meta.lastmodified": _moment(User.updated_at),
        },
        {
            "id": true(),
            "username": true(),
            "externalid": User.external_id.is_not(None),
            "displayname": User.display_name.is_not(None),
            "name": true(),
            "name.givenname": true(),
            "name.familyname": true(),
            "active": true(),
            "meta.created": true(),
            "meta.lastmodified": true(),
        },
    ),
    {
        "emails": ((_EMAIL, _EMAIL_PRESENT), _emails_of_user),
        "groups": (({"value": _exact(Group.name)}, {"value": true()}), _groups_of_user),
    },
)

_GROUPS = _Translator(
    GROUP_SCHEMA,
    (
        {
            "id": _exact(Group.name),
            "displayname": _folded(func.coalesce(Group.display_key, Group.name)),
            "externalid": _exact(Group.external_id),
            "meta.created": _moment(Group.created_at),
            "meta.lastmodified": _moment(Group.updated_at),
        },
        {
            "id": true(),
            "displayname": true(),
            "externalid": Group.external_id.is_not(None),
            "meta.created": true(),
            "meta.lastmodified": true(),
        },
    ),
    {"members": ((_MEMBER, _MEMBER_PRESENT), _members_of_group)},
)


def user_condition(text: str | None) -> Condition:
    """The SQL condition of a filter on /Users; 400 invalidFilter for one we cannot run."""
    return true() if not text else _translate(_USERS, text)


def group_condition(text: str | None) -> Condition:
    return true() if not text else _translate(_GROUPS, text)


def _translate(translator: _Translator, text: str) -> Condition:
    node = parse(text)
    try:
        return translator(node)
    except ScimError:
        raise
    except (TypeError, ValueError) as exc:
        raise invalid_filter(f"The filter {text!r} cannot be run: {exc}.") from None
