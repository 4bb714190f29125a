"""SCIM filters (RFC 7644 section 3.4.2.2) read into predicates (app.predicates), by scim2-models.

What SCIM's schemas say is settled here: which attribute a path names, which
operators it takes, that userName ignores case (userids are stored
lower-cased). The repository compiles the result to SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, auto

from scim2_models import SCIMException, ScimFilter
from scim2_models.path import (
    AttrPath,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    ValuePath,
)
from scim2_models.path import Not as NotNode
from scim2_models.path import Present as PresentNode

from app.names import ascii_lower
from app.predicates import (
    BOOLEAN_OPS,
    ORDER_OPS,
    TEXT_OPS,
    And,
    Attribute,
    Collection,
    Compare,
    Not,
    Op,
    Or,
    Predicate,
    Present,
    Some,
)
from app.scim.errors import ScimError, invalid_filter
from app.timestamps import parse_timestamp

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_FILTER_LENGTH = 4096


class Kind(Enum):
    TEXT = auto()
    USER_NAME = auto()  # text that ignores case the way userids are stored: A-Z lowered
    BOOLEAN = auto()
    MOMENT = auto()


@dataclass(frozen=True)
class Schema:
    """The attributes a filter on one resource type may name, by lower-cased path."""

    uri: str
    attributes: dict[str, tuple[Attribute, Kind]]
    # Paths that can only be tested with `pr` (a complex attribute): what they test.
    present_only: dict[str, Attribute]
    # Multi-valued attributes: their sub-attributes (the default one is "value").
    collections: dict[str, tuple[Collection, dict[str, tuple[Attribute, Kind]]]]


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
    return node.value


def _op(node: Comparison) -> Op:
    return Op(node.op.value)


def _compare(attribute: Attribute, kind: Kind, node: Comparison) -> Compare:
    op = _op(node)
    if kind is Kind.BOOLEAN:
        if not isinstance(node.value, bool) or op not in BOOLEAN_OPS:
            raise invalid_filter(f"{node.attr_path} takes eq or ne with true or false.")
        return Compare(attribute, op, node.value)
    text = _string(node)
    if kind is Kind.MOMENT:
        try:
            if any(ord(char) < 32 for char in text):
                # fromisoformat() takes any character between date and time.
                raise ValueError(text)
            moment: datetime = parse_timestamp(text)
        except ValueError:
            raise invalid_filter(f"{node.attr_path} compares with a dateTime.") from None
        if op not in ORDER_OPS:
            raise invalid_filter(f"{node.attr_path} does not support {op.value}.")
        return Compare(attribute, op, moment)
    if op not in TEXT_OPS:
        raise invalid_filter(
            f"{node.attr_path} does not support {op.value}: only eq, ne, co, sw, ew."
        )
    return Compare(attribute, op, ascii_lower(text) if kind is Kind.USER_NAME else text)


class _Reader:
    """A scim2-models filter tree, as a predicate over one resource type (or one collection)."""

    def __init__(self, schema: Schema, *, inside: str | None = None) -> None:
        self.schema = schema
        # In emails[...]: the collection's sub-attributes are the attributes.
        self.attributes = schema.collections[inside][1] if inside else schema.attributes
        self.present_only = {} if inside else schema.present_only
        self.collections = {} if inside else schema.collections

    def __call__(self, node: FilterNode) -> Predicate:
        if isinstance(node, LogicalExpr):
            terms = tuple(self(term) for term in node.terms)
            return And(terms) if node.op == LogicalOperator.and_ else Or(terms)
        if isinstance(node, NotNode):
            return Not(self(node.expr))
        if isinstance(node, ValuePath):
            name = self._collection(node.attr_path)
            inner = _Reader(self.schema, inside=name)
            return Some(self.collections[name][0], inner(node.val_filter))
        if isinstance(node, (Comparison, PresentNode)):
            return self._leaf(node)
        raise invalid_filter(f"The filter {node} is not supported.")

    def _collection(self, path: AttrPath) -> str:
        self._check_uri(path)
        name = path.attr.lower()
        if name not in self.collections or path.sub_attr is not None:
            raise invalid_filter(f"{path} cannot be filtered with [...] here.")
        return name

    def _check_uri(self, path: AttrPath) -> None:
        if path.uri is not None and path.uri.lower() != self.schema.uri.lower():
            raise invalid_filter(f"{path}: this endpoint filters on {self.schema.uri} only.")

    def _leaf(self, node: Comparison | PresentNode) -> Predicate:
        path = node.attr_path
        self._check_uri(path)
        unknown = invalid_filter(f"{path} is not an attribute that can be filtered on.")
        collection = self.collections.get(path.attr.lower())
        if collection is not None:
            # emails.type eq "work": some email's type is "work".
            kind, subs = collection
            found = subs.get((path.sub_attr or "value").lower())
            if found is None:
                raise unknown
            leaf = Present(found[0]) if isinstance(node, PresentNode) else _compare(*found, node)
            return Some(kind, leaf)
        name = path.attr.lower() + ("." + path.sub_attr.lower() if path.sub_attr else "")
        found = self.attributes.get(name)
        if isinstance(node, PresentNode):
            if found is not None:
                return Present(found[0])
            if name in self.present_only:
                return Present(self.present_only[name])
            raise unknown
        if found is None:
            raise unknown
        return _compare(*found, node)


_MOMENTS = {
    "meta.created": (Attribute.CREATED, Kind.MOMENT),
    "meta.lastmodified": (Attribute.LAST_MODIFIED, Kind.MOMENT),
}

USERS = Schema(
    USER_SCHEMA,
    {
        "id": (Attribute.USERID, Kind.TEXT),
        "username": (Attribute.USERID, Kind.USER_NAME),
        "externalid": (Attribute.EXTERNAL_ID, Kind.TEXT),
        "displayname": (Attribute.DISPLAY_NAME, Kind.TEXT),
        "name.givenname": (Attribute.FIRST_NAME, Kind.TEXT),
        "name.familyname": (Attribute.LAST_NAME, Kind.TEXT),
        "active": (Attribute.ACTIVE, Kind.BOOLEAN),
        **_MOMENTS,
    },
    # Every user has a name (its given and family names are required).
    {"name": Attribute.FIRST_NAME},
    {
        "emails": (
            Collection.EMAILS,
            {
                "value": (Attribute.EMAIL_VALUE, Kind.TEXT),
                "type": (Attribute.EMAIL_TYPE, Kind.TEXT),
                "primary": (Attribute.EMAIL_PRIMARY, Kind.BOOLEAN),
            },
        ),
        "groups": (Collection.GROUPS, {"value": (Attribute.GROUP, Kind.TEXT)}),
    },
)

GROUPS = Schema(
    GROUP_SCHEMA,
    {
        "id": (Attribute.NAME, Kind.TEXT),
        "displayname": (Attribute.DISPLAY_NAME, Kind.TEXT),
        "externalid": (Attribute.EXTERNAL_ID, Kind.TEXT),
        **_MOMENTS,
    },
    {},
    {"members": (Collection.MEMBERS, {"value": (Attribute.MEMBER, Kind.TEXT)})},
)


def user_filter(text: str | None) -> Predicate | None:
    """The predicate of a filter on /Users (None: no filter); 400 invalidFilter for a bad one."""
    return None if not text else _read(USERS, text)


def group_filter(text: str | None) -> Predicate | None:
    return None if not text else _read(GROUPS, text)


def _read(schema: Schema, text: str) -> Predicate:
    node = parse(text)
    try:
        return _Reader(schema)(node)
    except ScimError:
        raise
    except (TypeError, ValueError) as exc:
        raise invalid_filter(f"The filter {text!r} cannot be run: {exc}.") from None
