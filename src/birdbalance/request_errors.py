"""Why a request body was refused: msgspec's validation messages as MessageBird errors
that name the parameter, in words a person reads."""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from birdbalance.errors import BadRequest, InvalidParameter, MissingParameter, ServiceError

_AT: Final = re.compile(
    r"(?P<message>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?", re.DOTALL
)
_UNKNOWN: Final = re.compile(r"Object contains unknown field `(?P<name>.*)`", re.DOTALL)
_MISSING: Final = re.compile(r"Object missing required field `(?P<name>.*)`", re.DOTALL)
_EXPECTED: Final = re.compile(r"Expected `(?P<types>[^`]*)`(?P<rest>.*)", re.DOTALL)
_LENGTH: Final = re.compile(r" of length (?P<op>[<>]=) (?P<n>\d+)")
_BOUND: Final = re.compile(r" (?P<op>[<>]=) (?P<n>-?\d+)")
_KINDS: Final = {
    "str": "a string",
    "int": "an integer",
    "object": "an object",
    "array": "a list",
    "bool": "true or false",
    "float": "a number",
}


def refusal(model: type[msgspec.Struct], text: str) -> ServiceError:
    """msgspec's validation message as a MessageBird error naming the parameter: the
    top-level field for a nested one (``recharge.amount`` is ``recharge``)."""
    match = _AT.fullmatch(text)
    assert match is not None
    message, path = match["message"], match["path"] or ""
    fields = re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", path)
    # Inside a list of objects (a bulk request's operations), name the item by its index.
    named = inside = ".".join(fields)
    if re.search(r"\[\d+\]", path):
        inside = path.lstrip(".")  # the object a field is missing from or unknown in
        named = re.sub(r"\[(\.\.\.|\d+)\]$", "", inside)
    if unknown := _UNKNOWN.fullmatch(message):
        name = unknown["name"][:40]
        full = f"{inside}.{name}" if inside else name
        return InvalidParameter(f"unknown parameter {full!r}", fields[0] if fields else name)
    if missing := _MISSING.fullmatch(message):
        name = missing["name"]
        full = f"{inside}.{name}" if inside else name
        return MissingParameter(f"{full} is required", fields[0] if fields else name)
    if not fields:
        return BadRequest("the request body must be a JSON object")
    where = named
    if match["key"]:
        where = f"each {where} key"
    elif path.endswith("[...]"):
        where = f"each {where} value"
    elif path.endswith("]"):
        where = f"each {where} item"
    return InvalidParameter(f"{where} {_explain(model, fields, message)}", fields[0])


def _explain(model: type[msgspec.Struct], fields: list[str], message: str) -> str:
    expected = _EXPECTED.fullmatch(message)
    if expected is None:
        if message.startswith("Invalid enum value"):
            allowed = _allowed(model, fields)
            return f"must be one of {', '.join(allowed)}" if allowed else "is not allowed"
        if message.startswith("Invalid value "):  # a tag (a bulk operation's type)
            return f"has an unknown value {message.removeprefix('Invalid value ')}"
        return message[:1].lower() + message[1:]  # our own words (_dec_hook), or msgspec's
    kinds = [_KINDS.get(t.strip(), t.strip()) for t in expected["types"].split("|")]
    kind = next((k for k in kinds if k != "null"), "null")
    rest = expected["rest"]
    if rest.startswith(", got"):
        return f"must be {kind}"
    if length := _LENGTH.match(rest):
        unit = "keys" if kind == "an object" else "items" if kind == "a list" else "characters"
        if length["op"] == "<=":
            return f"must have at most {length['n']} {unit}"
        return "must not be empty" if length["n"] == "1" else f"needs {length['n']} {unit}"
    if rest.startswith(" matching regex"):
        return "must not contain NUL characters"
    if bound := _BOUND.match(rest):
        side = "at most" if bound["op"] == "<=" else "at least"
        return f"must be {side} {bound['n']}"
    return message[:1].lower() + message[1:]


def _allowed(model: type[msgspec.Struct], fields: list[str]) -> list[str]:
    """The values an enum field takes (``fields``: its path of field names)."""
    info: Any = msgspec.inspect.type_info(model)
    for name in fields:
        info = _unwrap(info)
        if not isinstance(info, msgspec.inspect.StructType):
            return []
        found = next((f for f in info.fields if f.encode_name == name), None)
        if found is None:
            return []
        info = found.type
    info = _unwrap(info)
    if isinstance(info, msgspec.inspect.ListType):
        info = _unwrap(info.item_type)
    if isinstance(info, msgspec.inspect.LiteralType):
        return [str(v) for v in info.values]
    if isinstance(info, msgspec.inspect.EnumType):
        return [str(member.value) for member in info.cls]
    return []


def _unwrap(info: Any) -> Any:
    """The one non-null, non-unset, non-text member of a union (or the type itself)."""
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        members = [_unwrap(t) for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        lists = [m for m in members if isinstance(m, msgspec.inspect.ListType)]
        members = lists or members
        return members[0] if len(members) == 1 else info
    return info
