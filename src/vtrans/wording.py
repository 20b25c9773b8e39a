"""Validator messages in words: msgspec's ``Expected `float` <= 21600.0 - at `$.video_seconds```
becomes ``video_seconds must be at most 21600 s (6 h)``. The service words its problems so; the
client words what a server sent raw (an older vtrans, or another server of msgspec's)."""

from __future__ import annotations

import re

_WORDS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}
_TYPES = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "null": "null",
    "array": "an array",
    "object": "an object",
}
_AT = r"(?: - at `\$\.?(?P<at>[^`]*)`)?"
_VALIDATOR = [
    (re.compile(r"Expected `\w+` (?P<op>[<>]=?) (?P<n>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)" + _AT), "bound"),
    (re.compile(r"Expected `str` of length (?P<op>[<>]=?) (?P<n>\d+)" + _AT), "length"),
    (re.compile(r"Expected `(?P<want>\w+(?: \| \w+)*)`, got `(?P<got>\w+)`" + _AT), "type"),
    (re.compile(r"Object missing required field `(?P<field>[^`]+)`" + _AT), "missing"),
    (re.compile(r"Object contains unknown field `(?P<field>[^`]+)`" + _AT), "unknown"),
    (re.compile(r"Invalid enum value (?P<value>'[^']*'|\S+)" + _AT), "enum"),
]


def readable(detail: str) -> str:
    """``detail`` with a quoted validator message (msgspec's ``Expected `float` <= 21600.0 - at
    `$.video_seconds```) put in words (``video_seconds must be at most 21600 s (6 h)``)."""
    for pattern, kind in _VALIDATOR:
        match = pattern.search(detail)
        if match is not None:
            return detail[: match.start()] + _words(kind, match) + detail[match.end() :]
    return detail


def _words(kind: str, match: re.Match[str]) -> str:
    at = match["at"] or ""
    name = at or "the body"
    if kind == "bound":
        return f"{name} must be {_WORDS[match['op']]} {_amount(float(match['n']), at)}"
    if kind == "length":
        return f"{name} must be {_WORDS[match['op']]} {match['n']} characters long"
    if kind == "type":
        want = " or ".join(_TYPES.get(each, f"`{each}`") for each in match["want"].split(" | "))
        got = _TYPES.get(match["got"], f"`{match['got']}`")
        return f"{name} must be {want}, not {got}"
    if kind == "enum":
        return f"{name} cannot be {match['value']}"
    field = f"{at}.{match['field']}" if at else match["field"]
    if kind == "missing":
        return f"{field} is required"
    return f"{field} is not a field of this request"


def _amount(number: float, field: str) -> str:
    """``21600 s (6 h)`` for a field in seconds, else the number as it was."""
    if not field.endswith("seconds"):
        return f"{number:g}"
    hours, minutes = number / 3600, number / 60
    longer = f" ({hours:g} h)" if number >= 3600 else f" ({minutes:g} min)" if number >= 60 else ""
    return f"{number:g} s{longer}"
