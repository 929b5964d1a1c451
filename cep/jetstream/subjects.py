"""NATS names as pipelines write them: stream names and subjects, checked at load time."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_STREAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOKEN = re.compile(r"^[^\s.*>]+$")


def check_stream_name(name: str) -> str:
    """A params validator: JetStream stream names are letters, digits, `_` and `-`."""
    if not _STREAM.match(name):
        raise ValueError(f"{name!r} is not a JetStream stream name (letters, digits, _ and -, "
                         f"at most 64; no dots, spaces or wildcards)")
    return name


def check_subject(subject: str) -> str:
    """A params validator: a subject to publish to, dot-separated tokens without wildcards."""
    if not all(_TOKEN.match(token) for token in subject.split(".")):
        raise ValueError(f"{subject!r} is not a NATS subject to publish to (tokens separated by "
                         f"dots, no spaces, no * or > wildcards)")
    return subject


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether the NATS subject `pattern` (`*` one token, `>` the rest) covers `subject`."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given) or (token != "*" and token != given[index]):
            return False
    return len(wanted) == len(given)


StreamName = Annotated[str, AfterValidator(check_stream_name)]
"""A params field type for a JetStream stream name."""
