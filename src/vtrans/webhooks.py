"""Verify the webhooks vtrans sends (Standard Webhooks: HMAC-SHA256 with a ``whsec_`` secret).

    from vtrans.webhooks import verify, WebhookVerificationError

    event = verify(request_body, request_headers, secret="whsec_...")
    if event.type == "job.completed": ...

Reject what fails (answer 400) and deduplicate on ``webhook-id``: deliveries are at least once.
"""

from __future__ import annotations

import binascii
import hmac
import time
from collections.abc import Mapping

import msgspec

from vtrans.client.errors import VtransError
from vtrans.protocol import WebhookEvent, sign_webhook

#: How far a webhook's timestamp may be from now, in seconds (as the reference libraries).
DEFAULT_TOLERANCE = 300


class WebhookVerificationError(VtransError):
    """The webhook is not authentic, is outside the time tolerance (a replay), or is malformed."""


def verify(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """Check a webhook's signature and timestamp; return its event, or raise
    :class:`WebhookVerificationError`. ``headers`` may be any case-insensitive or lower-case
    mapping (a framework's request headers)."""
    body = payload.encode() if isinstance(payload, str) else payload
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not (stamp.isascii() and stamp.isdigit()):
        raise WebhookVerificationError(f"webhook-timestamp is not a Unix time: {stamp[:40]!r}")
    skew = (time.time() if now is None else now) - int(stamp)
    if abs(skew) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is {abs(skew):.0f}s {'old' if skew > 0 else 'in the future'} "
            f"(tolerance {tolerance:.0f}s): a replay or a wrong clock"
        )
    try:
        expected = sign_webhook(secret, msg_id, int(stamp), body)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a base64 'whsec_' secret") from None
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise WebhookVerificationError("no signature matches: wrong secret or altered payload")
    try:
        return msgspec.json.decode(body, type=WebhookEvent)
    except msgspec.MsgspecError as exc:
        raise WebhookVerificationError(f"the signed payload is not a vtrans event: {exc}") from None
