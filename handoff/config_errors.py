"""A config file's tables converted to its structs, and msgspec's refusal turned into the one line
a biomed tech reads: dotted key, then the problem.

The structs in `handoff.config` say what is allowed; this module only says it in words, so the
words for "unknown key", "out of range" or "wrong type" are the same for every key. msgspec
names the rule and the place (`Expected `int` <= 100 - at `$.policy.break_glass_per_30d``); the
value and the bound's name are read back from the file and the struct.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from handoff.errors import ConfigError

T = TypeVar("T")
_AT = re.compile(r"(.*) - at `\$(.*)`", re.DOTALL)
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_NAMED = re.compile(r"Object (missing required|contains unknown) field `(.*)`", re.DOTALL)
_BOUND = re.compile(r"Expected `\w+` (>=|>|<=|<) .*", re.DOTALL)
_LENGTH = re.compile(r"Expected `(\w+)` of length (>=|<=) \d+", re.DOTALL)
_ABSENT = object()
BLANK_PATH: Final = Path("")
"""What a path key given as "" converts to: this very object, told apart from "." by identity."""


class KeyedValueError(ValueError):
    """Raised by a table's own check to blame one of its keys rather than the whole table."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


def convert(raw: Mapping[str, Any], model: type[T]) -> T:
    """`raw` (a TOML document or table) as `model`, strictly: no "5" for 5, no "yes" for true;
    paths from strings. Raises `msgspec.ValidationError`."""
    return msgspec.convert(raw, model, strict=True, dec_hook=_from_toml)


def validated(model: type[T], raw: Mapping[str, Any], source: Path) -> T:
    """`raw` as `model`, or a `ConfigError` naming the first key of `source` at fault."""
    try:
        return convert(raw, model)
    except msgspec.ValidationError as exc:
        key, problem = first_error(exc, raw, model)
        raise ConfigError.at(source, key, problem) from None


def _from_toml(kind: type, value: object) -> object:
    """TOML has no path type: a path is a string (or a `Path`, from code). "" becomes `BLANK_PATH`,
    which the key's `Check` refuses or turns into None (msgspec takes nothing but a `Path` here)."""
    if kind is Path:
        if isinstance(value, Path):
            return value
        if not isinstance(value, str):
            raise ValueError(f"must be a file path (a string), got {_show(value)}")
        return Path(value) if value else BLANK_PATH
    raise NotImplementedError


@dataclass(frozen=True)
class _Spot:
    """Where msgspec stopped: the dotted key, the declared type there, the file's value, and the
    kinds of a tagged array item when the `kind` itself is at fault."""

    key: str
    annotation: Any
    value: Any
    tags: tuple[str, ...] = ()


def first_error(exc: msgspec.ValidationError, raw: Mapping[str, Any], root: type) -> tuple[str, str]:
    """The dotted key (`readers[1].trust_anchors`) and the problem of the error msgspec raised."""
    found = _AT.fullmatch(str(exc))
    message, where = (found[1], found[2]) if found else (str(exc), "")
    parts = [name or (int(index) if index.isdigit() else index) for name, index in _PART.findall(where)]
    spot = _locate(root, raw, parts)
    cause = exc.__cause__
    if isinstance(cause, KeyedValueError):
        return _join(spot.key, cause.key), cause.problem
    if isinstance(cause, ValueError):
        return spot.key, str(cause)
    named = _NAMED.fullmatch(message)
    if named:
        return _named_key(spot, named[1] == "missing required", named[2])
    if spot.tags:
        return spot.key, f"must be one of {', '.join(spot.tags)}, got {_show(spot.value)}"
    return spot.key, _problem(message, spot)


def _named_key(spot: _Spot, missing: bool, name: str) -> tuple[str, str]:
    """A key missing or unknown; msgspec finds an unknown key first, but a required key missing
    from the same table is named first (an unknown key is often that key misspelt)."""
    table = _choose(_bare(spot.annotation), spot.value)
    if not missing and _is_struct(table) and isinstance(spot.value, Mapping):
        absent = [f.name for f in msgspec.structs.fields(table) if f.required and f.name not in spot.value]
        missing, name = (True, absent[0]) if absent else (False, name)
    key = _join(spot.key, name)
    if missing:
        tags = _tags(table)
        return key, f"is required (one of {', '.join(tags)})" if tags and name == _tag_field(table) else "is required"
    return key, "is not a known key (known here: {})".format(", ".join(_known(table)))


def _problem(message: str, spot: _Spot) -> str:
    value, bare = spot.value, _bare(spot.annotation)
    number = "a number of seconds" if spot.key.endswith("_s") else "a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be {number}, got {_show(value)}"
    if typing.get_origin(bare) is Literal:
        return f"must be one of {_options(bare)}, got {_show(value)}"
    meta = _meta(spot.annotation)
    if _BOUND.fullmatch(message) and isinstance(value, int | float):
        # Read from the declaration, not the message: msgspec says `>= 1` for an int declared `gt=0`.
        if "gt" in meta and not value > meta["gt"]:
            return f"must be greater than {_bound(meta['gt'])}, got {value}"
        if "ge" in meta and not value >= meta["ge"]:
            return f"must be {_bound(meta['ge'])} or more, got {value}"
        if "le" in meta and not value <= meta["le"]:
            named = f" ({meta['bound']})" if "bound" in meta else ""
            return f"must be at most {meta['le']:g}{named}, got {value}"
    length = _LENGTH.fullmatch(message)
    if length:
        what = "characters" if length[1] == "str" else "items"
        if length[2] == "<=":
            return f"must have at most {meta.get('max_length')} {what}"
        least = meta.get("min_length")
        return "must not be empty" if least == 1 else f"must have at least {least} {what}"
    if message.startswith("Expected `"):
        return _wrong_type(bare, spot.key, value, number) or f"is not valid: {message}"
    return f"is not valid: {message}"


def _wrong_type(bare: Any, key: str, value: object, number: str) -> str | None:
    origin = typing.get_origin(bare)
    if _is_table(bare) or origin is dict:
        return "must be a table"
    if origin in (tuple, list):
        item = _bare(typing.get_args(bare)[0]) if typing.get_args(bare) else None
        return f"must be an array of tables ([[{key}]])" if _is_table(item) else f"must be an array, got {_show(value)}"
    words = {
        bool: "must be true or false",
        int: "must be a whole number",
        float: f"must be {number}",
        str: "must be a string",
    }
    return f"{words[bare]}, got {_show(value)}" if bare in words else None


def _locate(root: type, raw: Mapping[str, Any], parts: Sequence[int | str]) -> _Spot:
    """Walk msgspec's path through the declared types and the file's values side by side."""
    key, annotation = "", root
    value: Any = raw
    tags: tuple[str, ...] = ()
    for part in parts:
        inner = _choose(_bare(annotation), value)
        tags = ()
        if part == "...":
            item_type = typing.get_args(inner)[-1]
            name, value = _first_refused(value, item_type)
            key, annotation = f"{key}.{name}", item_type
        elif isinstance(part, int):
            args = typing.get_args(inner)
            annotation = args[0] if args else Any
            value = value[part] if isinstance(value, list) and part < len(value) else _ABSENT
            key += f"[{part}]"
        else:
            annotation = _field_types(inner).get(part, Any) if _is_struct(inner) else Any
            if _tags(inner) and part == _tag_field(inner):
                tags = _tags(inner)
            value = value.get(part, _ABSENT) if isinstance(value, Mapping) else _ABSENT
            key = f"{key}.{part}" if key else str(part)
    return _Spot(key, annotation, value, tags)


def _first_refused(table: object, item_type: Any) -> tuple[str, object]:
    """msgspec says only `[...]` for a value in a table of free keys: find which one it was."""
    for name, item in table.items() if isinstance(table, Mapping) else ():
        try:
            convert({"": item}, dict[str, item_type])
        except msgspec.ValidationError:
            return str(name), item
    return "...", _ABSENT


def _bare(annotation: Any) -> Any:
    """The type under `Annotated[...]` and `| None`."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) > 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _choose(annotation: Any, value: object) -> Any:
    """The member of a union of tagged tables that the file's `kind` names, else the union."""
    tags = _tags(annotation)
    if tags and isinstance(value, Mapping):
        for member in typing.get_args(annotation):
            if value.get(_tag_field(annotation)) == member.__struct_config__.tag:
                return member
    return annotation


def _tags(annotation: Any) -> tuple[str, ...]:
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return ()
    members = typing.get_args(annotation)
    if not all(_is_struct(m) and m.__struct_config__.tag is not None for m in members):
        return ()
    return tuple(str(m.__struct_config__.tag) for m in members)


def _tag_field(annotation: Any) -> str | None:
    members = typing.get_args(annotation)
    return members[0].__struct_config__.tag_field if members and _is_struct(members[0]) else None


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _is_table(annotation: Any) -> bool:
    return _is_struct(annotation) or bool(_tags(annotation))


def _field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return {field.name: field.type for field in msgspec.structs.fields(struct)}


def _known(table: Any) -> tuple[str, ...]:
    if not _is_struct(table):
        return ()
    tag_field = table.__struct_config__.tag_field
    return (*((tag_field,) if tag_field else ()), *table.__struct_fields__)


def _meta(annotation: Any) -> dict[str, Any]:
    """The constraints on a key and the `extra` of its `msgspec.Meta`, e.g. the bound's name."""
    merged: dict[str, Any] = {}
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, msgspec.Meta):
            for name in ("gt", "ge", "lt", "le", "min_length", "max_length"):
                if getattr(meta, name) is not None:
                    merged[name] = getattr(meta, name)
            merged.update(meta.extra or {})
    return merged


def _options(literal: Any) -> str:
    return ", ".join(repr(option) for option in typing.get_args(literal))


def _join(key: str, name: str) -> str:
    return f"{key}{name}" if name.startswith("[") or not key else f"{key}.{name}"


def _bound(limit: object) -> str:
    return "zero" if limit == 0 else f"{limit:g}" if isinstance(limit, float) else str(limit)


def _show(value: object) -> str:
    kinds: dict[type, str] = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    described = kinds.get(type(value), "a table" if isinstance(value, dict) else type(value).__name__)
    return f"{described} ({value!r})" if isinstance(value, str | bool | int | float) else described
