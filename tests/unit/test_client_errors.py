"""The client's ``InvalidRequest`` says in words what a validator refused."""

from __future__ import annotations

import msgspec
import pytest

from vtrans.client import InvalidRequest
from vtrans.protocol import JobCreate
from vtrans.wording import readable


def service_detail(body: bytes) -> str:
    """The ``detail`` the service sends for a body its models refuse (as ``server/http/routes.py``)."""
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(body, type=JobCreate)
    return f"Invalid request: {refused.value}."


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"language": "es", "video_seconds": 1e9}', "video_seconds must be at most 21600 s (6 h)"),
        (b'{"language": "es", "video_seconds": 0}', "video_seconds must be more than 0 s"),
        (b'{"language": "e", "video_seconds": 5}', "language must be at least 2 characters long"),
        (b'{"language": "es", "video_seconds": "long"}', "video_seconds must be a number, not a string"),
        (b'{"video_seconds": 5}', "language is required"),
        (b'{"language": "es", "video_seconds": 5, "colour": 1}', "colour is not a field of this request"),
        (
            b'{"language": "es", "video_seconds": 5, "simulate": {"outcome": "x"}}',
            "simulate.outcome cannot be 'x'",
        ),
        (b"[]", "the body must be an object, not an array"),
        (
            b'{"language": "es", "video_seconds": 5, "source_url": 7}',
            "source_url must be a string or null, not an integer",
        ),
    ],
)
def test_a_validator_message_is_put_in_words(body: bytes, words: str) -> None:
    detail = service_detail(body)
    error = InvalidRequest(422, None, detail)
    assert str(error) == f"HTTP 422: Invalid request: {words}."
    assert "`" not in str(error)
    assert error.detail == detail  # what the service sent, unchanged


def test_other_details_are_left_alone() -> None:
    detail = "Unknown language 'xx'; supported: ar, bg."
    assert readable(detail) == detail
    assert str(InvalidRequest(422, None, detail)) == f"HTTP 422: {detail}"
    assert readable("Expected `float` <= lots - at `$.x`") == "Expected `float` <= lots - at `$.x`"
