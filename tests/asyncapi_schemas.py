"""The payload schemas of docs/asyncapi.yaml, as validators the tests apply to real messages."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker

from tests.kit.cli import REPO


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())
    return loaded


def validator(schema_name: str) -> Draft202012Validator:
    components = document()["components"]
    assert schema_name in components["schemas"], schema_name
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
    return Draft202012Validator(root, format_checker=FormatChecker())


def validate_event(event: dict[str, Any]) -> None:
    validator(event["type"].removeprefix("org.handoff.")).validate(event)
