"""Queries over users, groups and memberships; no business rules."""
