"""Domain errors: what went wrong in a use case, in its own words, without HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.names import NAME_RULE, SEARCH_RULE, is_valid_name


class DomainError(Exception):
    """Base of every error a use case reports to its caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class NotFound(DomainError):
    pass


class UserNotFound(NotFound):
    def __init__(self, userid: str) -> None:
        super().__init__(f"There is no user {userid!r}.")
        self.userid = userid


class GroupNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"There is no group {name!r}.")
        self.name = name


class GroupHasNoMembers(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Group {name!r} has no members; a group is listed only once it has members."
        )
        self.name = name


class Conflict(DomainError):
    pass


class UserExists(Conflict):
    def __init__(self, userid: str) -> None:
        super().__init__(f"User {userid!r} already exists; use PUT to replace it.")
        self.userid = userid


class GroupExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"Group {name!r} already exists; use PUT to set its members.")
        self.name = name


class DisplayNameTaken(Conflict):
    def __init__(self, display_name: str) -> None:
        super().__init__(
            f"A group named {display_name!r} exists already (names differing only in case"
            " are the same name)."
        )


class Invalid(DomainError):
    """The request is well formed but cannot be accepted; `problems` say where."""

    def __init__(self, detail: str, problems: Sequence[FieldProblem]) -> None:
        super().__init__(detail)
        self.problems = list(problems)


class InvalidName(Invalid):
    def __init__(self, field: str, value: str) -> None:
        message = f"{value!r} {NAME_RULE}"
        super().__init__(f"The {field} {message}.", [FieldProblem(field, message)])


class UseridMismatch(Invalid):
    def __init__(self, path_userid: str, body_userid: str) -> None:
        message = (
            f"{body_userid!r} differs from {path_userid!r} in the path; a userid cannot change"
        )
        super().__init__(f"The userid {message}.", [FieldProblem("userid", message)])


class UnknownGroups(Invalid):
    def __init__(self, names: Sequence[str], listed: Sequence[str]) -> None:
        unknown = ", ".join(repr(name) for name in names)
        super().__init__(
            f"These groups do not exist: {unknown}; create them first with POST /groups/{{name}}.",
            _unknown_entries(names, listed, "groups", "group"),
        )
        self.names = list(names)


class UnknownUsers(Invalid):
    def __init__(self, userids: Sequence[str], listed: Sequence[str]) -> None:
        unknown = ", ".join(repr(userid) for userid in userids)
        super().__init__(
            f"These users do not exist: {unknown}; create them first with POST /users/{{userid}}.",
            _unknown_entries(userids, listed, "members", "user"),
        )
        self.userids = list(userids)


class NonEmptyBody(Invalid):
    def __init__(self) -> None:
        message = "a new group starts empty: send no body or []; set members with PUT"
        super().__init__(f"The body must be empty: {message}.", [FieldProblem("body", message)])


def _unknown_entries(
    unknown: Sequence[str], listed: Sequence[str], field: str, kind: str
) -> list[FieldProblem]:
    missing = set(unknown)
    return [
        FieldProblem(f"{field}[{index}]", f"{kind} {name!r} does not exist")
        for index, name in enumerate(listed)
        if name in missing
    ]


class NotAMember(NotFound):
    def __init__(self, name: str, userid: str) -> None:
        super().__init__(f"User {userid!r} is not a member of group {name!r}.")


class PreconditionFailed(DomainError):
    def __init__(self, resource: str, current: str) -> None:
        super().__init__(
            f"{resource} has changed: its ETag is now {current}; fetch it again and retry."
        )
        self.current = current


class InvalidCursor(Invalid):
    def __init__(self) -> None:
        message = "is not a cursor this list gave out; start again without one"
        super().__init__(f"The cursor {message}.", [FieldProblem("cursor", message)])


class InvalidSearch(Invalid):
    def __init__(self) -> None:
        super().__init__(f"The search text q {SEARCH_RULE}.", [FieldProblem("q", SEARCH_RULE)])


class NullField(Invalid):
    def __init__(self, fields: list[str]) -> None:
        message = "cannot be null: it is required (omit it to keep the current value)"
        super().__init__(
            f"{', '.join(fields)} {message}.", [FieldProblem(field, message) for field in fields]
        )


class Busy(DomainError):
    """The database stayed too busy for the change to go through; it did not happen."""

    def __init__(
        self, message: str = "The database is busy; nothing was changed. Retry in a moment."
    ) -> None:
        super().__init__(message)


class NotCommitted(Busy):
    """The transaction holding the change failed to commit; it did not happen.

    A kind of Busy: whoever tolerates a busy database (and its Retry-After)
    tolerates this too.
    """

    def __init__(self) -> None:
        super().__init__("The change could not be committed; nothing was changed. Retry.")


class SearchTimedOut(DomainError):
    """A search ran over its time limit and was stopped; nothing was changed."""

    def __init__(self, limit_ms: int) -> None:
        super().__init__(
            f"The search took longer than its limit of {limit_ms} ms and was stopped;"
            " narrow it (a q of three characters or more uses the substring index)."
        )
        self.limit_ms = limit_ms


class Unauthenticated(DomainError):
    """No credentials, or ones that are not (or no longer) valid; never says which."""

    def __init__(self) -> None:
        super().__init__("A valid API token is required: send 'Authorization: Bearer <token>'.")


class Forbidden(DomainError):
    def __init__(self, needed: str) -> None:
        super().__init__(f"This needs a token with the {needed} role or higher.")


class TokenExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"A token named {name!r} exists already; revoke it or pick another name.")


class TokenNotFound(NotFound):
    def __init__(self, name: str) -> None:
        # A name that breaks the name rule may be a secret pasted by mistake:
        # it is not repeated back.
        shown = repr(name) if is_valid_name(name) else "with that name"
        super().__init__(f"There is no token {shown}.")


class InvalidToken(Invalid):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"The {field} {message}.", [FieldProblem(field, message)])


class ListTooLong(Invalid):
    def __init__(self, field: str, length: int, limit: int) -> None:
        message = f"has {length} entries; at most {limit} are accepted"
        super().__init__(f"The list {field} {message}.", [FieldProblem(field, message)])


class CursorExpired(DomainError):
    """Events after this cursor are past retention: resynchronise, then follow `cursor`."""

    def __init__(self, cursor: str) -> None:
        super().__init__(
            "Events after this cursor are no longer kept. Resynchronise from GET /users "
            "(or export) and GET /groups, then follow the feed from `cursor`, taken before "
            "you read them (GET /events/cursor gives a fresh one)."
        )
        self.cursor = cursor


class EventsOff(DomainError):
    def __init__(self) -> None:
        super().__init__(
            "This server records no change events (GROUPED_USERS_EVENTS=false): "
            "there is no feed to read."
        )


class WebhookNotFound(NotFound):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"There is no webhook {webhook_id!r}.")


class DeliveryNotFound(NotFound):
    def __init__(self, webhook_id: str, event_id: str) -> None:
        super().__init__(f"Webhook {webhook_id!r} has no delivery of event {event_id!r}.")


class InvalidWebhook(Invalid):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"The {field} {message}.", [FieldProblem(field, message)])
