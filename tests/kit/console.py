"""Logging in to the console through Starlette's TestClient, as a browser's form post does."""

from __future__ import annotations

import re

from starlette.testclient import TestClient


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def log_in(client: TestClient, name: str, password: str) -> None:
    form = client.get("/login")
    done = client.post(
        "/login",
        data={"csrf": csrf_of(form.text), "name": name, "password": password, "next": "/fleet"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
