"""Webhooks: endpoints that receive the change feed, signed as Standard Webhooks defines."""
