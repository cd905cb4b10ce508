"""Checking an HTTP Authorization header: basic credentials (Flower, the exporter) or a bearer
token (the exporter, for Prometheus's `authorization` setting)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence


def authorized(header: str, credentials: Sequence[bytes]) -> bool:
    """Whether an Authorization header carries one of `credentials` (`user:password`)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    # Compare with every credential, so the time taken tells nothing about which one is close.
    return sum(hmac.compare_digest(given, credential) for credential in credentials) > 0


def bearer_authorized(header: str, token: bytes) -> bool:
    """Whether an Authorization header is `Bearer <token>`."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)
