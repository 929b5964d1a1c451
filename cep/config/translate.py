"""pydantic's validation errors, retold as short `Problem`s at the user's YAML line.

pydantic reports a path inside the data it was given (`loc`) and a long message; the user needs
the component (`source "ticks"`), the key they wrote, its line, and what to type instead. An
unknown key gets a "did you mean" among the model's own keys; alternatives of one union that all
failed for the same value are joined into one problem.
"""
from __future__ import annotations

import types
from typing import Annotated, Any, Callable, Collection, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cep.errors import Location, Problem
from cep.config.problems import KeyPath, describe, did_you_mean, nearest

Subject = Callable[[KeyPath], tuple[str, int]]
"""For errors spanning components: (name, how many leading path parts the name stands for)."""
_SAYS_ITS_INPUT = ("missing", "extra_forbidden", "value_error", "assertion_error")
"""Error types whose message needs no "(got ...)": nothing was given, or a validator's own
message, which names the value itself."""


def validation_problems(exc: ValidationError, *, model: type[BaseModel] | None,
                        locations: dict[KeyPath, Location], prefix: KeyPath = (),
                        subject: str | Subject = "", drop: int = 0,
                        reported: Collection[KeyPath] = ()) -> list[Problem]:
    """Problems for every error in `exc`.

    The data validated lives at YAML path `prefix`; the first `drop` parts of each pydantic `loc`
    are not in the YAML (an operator's shorthand value that the loader wrapped in its field).
    `subject` names the component at `prefix`, or derives the name from each error's YAML path.
    Errors at or below a path in `reported` (a value already reported, such as one naming an
    unset variable) are left out.
    """
    merged: dict[tuple[Location | None, str], list[dict[str, Any]]] = {}
    hints: dict[tuple[Location | None, str], str | None] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path = prefix + loc[drop:]
        if any(path[:len(done)] == done for done in reported):
            continue
        name, start = subject(path) if callable(subject) else (subject, len(prefix))
        where, field, error["msg"], hint = _explain(error, loc, path, start, model, locations)
        key = (where, (f"{name}: " if name else "") + field)
        merged.setdefault(key, []).append(error)
        hints.setdefault(key, hint)
    return [Problem(f"{label}{_message(errors)}", where, hints[key])
            for key, errors in merged.items() for where, label in [key]]


def _message(errors: list[dict[str, Any]]) -> str:
    """One cause: the error's message, or for the alternatives of a union that all refused the
    value, what would have been accepted (`expected an integer or a list`)."""
    value = errors[0].get("input")
    got = "" if errors[0]["type"] in _SAYS_ITS_INPUT or isinstance(
        value, (dict, list, tuple)) else f" (got {describe(value)})"
    messages = list(dict.fromkeys(error["msg"] for error in errors))
    if len(messages) == 1:
        return messages[0] + got
    wanted = list(dict.fromkeys(_EXPECTED.get(error["type"]) for error in errors))
    if None not in wanted:
        return f"expected {' or '.join(wanted)}{got}"
    return f"none of its accepted forms takes it: {'; '.join(messages)}{got}"


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "string_type": "a string",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "none_required": "nothing (null)", "path_type": "a file path (string)",
}
"""What a pydantic error type says was expected, in YAML terms."""


def _explain(error: dict[str, Any], loc: KeyPath, path: KeyPath, start: int,
             model: type[BaseModel] | None, locations: dict[KeyPath, Location]):
    """(location, "field: " label, message, hint) for one pydantic error at YAML `path`.

    The label names the keys below the component (`path[start:]`) that the user wrote.
    """
    kind = error["type"]
    if kind == "missing" and len(path) > start:
        return (nearest(locations, path[:-1]), _label(path[start:-1]),
                f"missing required key {path[-1]!r}", None)
    if kind == "extra_forbidden" and len(path) > start:
        known = _keys_at(model, loc[:-1]) if model else None
        hint = did_you_mean(str(path[-1]), known, "valid keys") if known else None
        return nearest(locations, path), _label(path[start:-1]), f"unknown key {path[-1]!r}", hint
    end = len(path)
    while end > start and path[:end] not in locations:
        end -= 1  # union members and other pydantic-only segments are not user keys
    return nearest(locations, path), _label(path[start:end]), _short(error["msg"]), None


def _label(rel: KeyPath) -> str:
    """`pattern[0].where: ` for a relative key path; empty for the component itself."""
    text = ""
    for part in rel:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"{text}: " if text else ""


def _short(message: str) -> str:
    if message.startswith("Input is not a valid path"):
        return "expected a file path (string)"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message[:1].lower() + message[1:]


def _keys_at(model: type[BaseModel], loc: KeyPath) -> list[str] | None:
    """The keys a user may write at `loc` inside `model`, if the type there is a model."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    keys = [f.alias or name for m in _members(current) if _is_model(m)
            for name, f in m.model_fields.items()]
    return keys or None


def _step(annotation: Any, part: Any) -> Any:
    for member in _members(annotation):
        if _is_model(member) and isinstance(part, str):
            for name, f in member.model_fields.items():
                if part in (name, f.alias):
                    return f.annotation
        args = get_args(member)
        origin = get_origin(member)
        if isinstance(part, int) and origin in (list, tuple, set, frozenset) and args:
            return args[0]
        if isinstance(part, str) and origin is dict and len(args) == 2:
            return args[1]
    return None


def _members(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    return [annotation]


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
