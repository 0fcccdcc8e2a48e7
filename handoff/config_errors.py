"""Pydantic's validation errors turned into the one line a biomed tech reads: dotted key, then the problem.

The schema in `handoff.config` says what is allowed; this module only says it in words, so the
words for "unknown key", "out of range" or "wrong type" are the same for every key.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


class KeyedValueError(ValueError):
    """Raised by a model's own check to blame one of its keys rather than the whole table."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


def first_error(exc: ValidationError, root: type[BaseModel], kinds: Mapping[str, type[BaseModel]]) -> tuple[str, str]:
    """The dotted key (`readers[1].trust_anchors`) and the problem of the first error pydantic found.

    `kinds` are the tables of the discriminated `[[readers]]` array by their `kind`.
    """
    error = exc.errors(include_url=False)[0]
    key, holder = _locate(error["loc"], root, kinds)
    kind, ctx, value = error["type"], error.get("ctx", {}), error["input"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(kinds)
        if kind == "union_tag_not_found":
            return f"{key}.kind", f"is required (one of {tags})"
        return f"{key}.kind", f"must be one of {tags}, got {_show(ctx.get('tag'))}"
    if kind == "value_error" and isinstance(ctx.get("error"), KeyedValueError):
        blamed: KeyedValueError = ctx["error"]
        return f"{key}.{blamed.key}", blamed.problem
    return key, _problem(error, _field_extra(holder, error["loc"]), key, value)


def _problem(error: ErrorDetails, extra: Mapping[str, Any], key: str, value: object) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    number = "a number of seconds" if key.endswith("_s") else "a number"
    simple = {
        "missing": "is required",
        "model_type": "must be a table",
        "model_attributes_type": "must be a table",
        "dict_type": "must be a table",
        "tuple_type": f"must be an array of tables ([[{key}]])",
        "float_type": f"must be {number}, got {_show(value)}",
        "finite_number": f"must be {number}, got {_show(value)}",
        "int_type": f"must be a whole number, got {_show(value)}",
        "bool_type": f"must be true or false, got {_show(value)}",
        "string_type": f"must be a string, got {_show(value)}",
        "path_type": f"must be a file path (a string), got {_show(value)}",
        "literal_error": f"must be one of {str(ctx.get('expected', '')).replace(' or ', ', ')}, got {_show(value)}",
    }
    if kind in simple:
        return simple[kind]
    if kind == "extra_forbidden":
        return "is not a known key (known here: {})".format(", ".join(extra.get("known", ())))
    if kind == "greater_than":
        return f"must be greater than {_bound(ctx['gt'])}, got {value}"
    if kind == "greater_than_equal":
        return f"must be {_bound(ctx['ge'])} or more, got {value}"
    if kind == "less_than_equal":
        named = f" ({extra['bound']})" if "bound" in extra else ""
        return f"must be at most {ctx['le']:g}{named}, got {value}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"is not valid: {error['msg']}"


def _locate(
    loc: Sequence[int | str], root: type[BaseModel], kinds: Mapping[str, type[BaseModel]]
) -> tuple[str, type[BaseModel] | None]:
    """The dotted key for pydantic's location, and the model whose field the last part names."""
    key = ""
    model: type[BaseModel] | None = root
    holder: type[BaseModel] | None = root
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int):
            key += f"[{part}]"
            tag = parts[0] if parts else None
            if isinstance(tag, str) and tag in kinds:
                model = kinds[tag]
                parts.pop(0)
            continue
        holder = model
        key = f"{key}.{part}" if key else part
        model = _section_of(model, part)
    return key, holder


def _section_of(model: type[BaseModel] | None, name: str) -> type[BaseModel] | None:
    field = model.model_fields.get(name) if model is not None else None
    if field is None:
        return None
    for candidate in (field.annotation, *typing.get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_extra(holder: type[BaseModel] | None, loc: Sequence[int | str]) -> Mapping[str, Any]:
    """What the schema says about the key at fault: its named bound, and the keys known beside it."""
    if holder is None:
        return {}
    extra: dict[str, Any] = {"known": tuple(holder.model_fields)}
    field = holder.model_fields.get(str(loc[-1])) if loc else None
    if field is not None and isinstance(field.json_schema_extra, dict):
        extra.update(field.json_schema_extra)
    return extra


def _bound(limit: object) -> str:
    return "zero" if limit == 0 else f"{limit:g}" if isinstance(limit, float) else str(limit)


def _show(value: object) -> str:
    kinds: dict[type, str] = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    described = kinds.get(type(value), "a table" if isinstance(value, dict) else type(value).__name__)
    return f"{described} ({value!r})" if isinstance(value, str | bool | int | float) else described
