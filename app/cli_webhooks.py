"""`grouped-users webhook ...`: the same use cases as /webhooks, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from app import cli
from app.service import webhooks
from app.service.events import TYPES
from app.settings import Settings


def _checked(settings: Settings, url: str) -> str:
    return asyncio.run(webhooks.checked_url(settings, url))


def _types(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _show(info: webhooks.WebhookInfo, **extra: Any) -> str:
    shown = vars(info) | {"created_at": info.created_at.isoformat()} | extra
    return json.dumps(shown, ensure_ascii=False)


def create(args: argparse.Namespace, settings: Settings) -> int:
    url = _checked(settings, args.url)
    info, secret = cli._with_session(
        settings,
        lambda session: webhooks.create_webhook(
            session,
            actor=cli._operator(),
            box=webhooks.secret_box(settings),
            url=url,
            types=_types(args.types),
            description=args.description,
        ),
    )
    print(f"webhook {info.id}; its signing secret, shown this once:", file=sys.stderr)
    print(_show(info, secret=secret))
    return 0


def list_(_args: argparse.Namespace, settings: Settings) -> int:
    for info in cli._with_session(settings, webhooks.list_webhooks):
        print(_show(info))
    return 0


def delete(args: argparse.Namespace, settings: Settings) -> int:
    cli._with_session(
        settings,
        lambda session: webhooks.delete_webhook(session, actor=cli._operator(), webhook_id=args.id),
    )
    print(f"webhook {args.id} deleted", file=sys.stderr)
    return 0


def set_enabled(args: argparse.Namespace, settings: Settings) -> int:
    info = cli._with_session(
        settings,
        lambda session: webhooks.change_webhook(
            session,
            actor=cli._operator(),
            webhook_id=args.id,
            changes={"enabled": args.webhook_command == "enable"},
        ),
    )
    print(_show(info))
    return 0


def rotate(args: argparse.Namespace, settings: Settings) -> int:
    rotation = cli._with_session(
        settings,
        lambda session: webhooks.rotate_secret(
            session,
            actor=cli._operator(),
            box=webhooks.secret_box(settings),
            webhook_id=args.id,
            overlap=settings.webhook_secret_overlap,
        ),
    )
    until = rotation.previous_valid_until
    overlap = f"; the previous one signs too until {until.isoformat()}" if until else ""
    print(f"webhook {args.id}: new signing secret, shown this once{overlap}:", file=sys.stderr)
    print(rotation.secret)
    return 0


def deliveries(args: argparse.Namespace, settings: Settings) -> int:
    found = cli._with_session(
        settings,
        lambda session: webhooks.list_deliveries(session, webhook_id=args.id, limit=args.limit),
    )
    for delivery in found:
        print(
            json.dumps(
                {
                    "event_id": delivery.event_id,
                    "state": delivery.state,
                    "attempts": [
                        {
                            "at": a.at.isoformat(),
                            "status_code": a.status_code,
                            "error": a.error,
                            "duration_ms": a.duration_ms,
                        }
                        for a in delivery.attempts
                    ],
                }
            )
        )
    return 0


def retry(args: argparse.Namespace, settings: Settings) -> int:
    cli._with_session(
        settings,
        lambda session: webhooks.retry_delivery(
            session, actor=cli._operator(), webhook_id=args.id, event_id=args.event
        ),
    )
    print(f"delivery of {args.event} to {args.id} queued again", file=sys.stderr)
    return 0


def add_commands(commands: Any) -> None:
    hook = commands.add_parser("webhook", help="webhook endpoints (signed change events)")
    sub = hook.add_subparsers(dest="webhook_command", required=True)
    made = sub.add_parser("create", help="register an endpoint; prints its secret once")
    made.add_argument("--url", required=True)
    made.add_argument("--types", help=f"comma-separated, of: {', '.join(TYPES)} (default: all)")
    made.add_argument("--description")
    made.set_defaults(handler=create)
    sub.add_parser("list", help="list endpoints as JSON lines").set_defaults(handler=list_)
    for name, handler, text in [
        ("delete", delete, "remove an endpoint and its queued deliveries"),
        ("enable", set_enabled, "turn an endpoint on (it receives what commits from now)"),
        ("disable", set_enabled, "turn an endpoint off"),
        ("rotate-secret", rotate, "a new signing secret, printed once"),
    ]:
        command = sub.add_parser(name, help=text)
        command.add_argument("id")
        command.set_defaults(handler=handler)
    shown = sub.add_parser("deliveries", help="the latest deliveries and their attempts")
    shown.add_argument("id")
    shown.add_argument("--limit", type=int, default=20)
    shown.set_defaults(handler=deliveries)
    again = sub.add_parser("retry", help="send one event to the endpoint again")
    again.add_argument("id")
    again.add_argument("event")
    again.set_defaults(handler=retry)
