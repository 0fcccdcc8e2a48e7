"""Driving the console over HTTP, in process (Starlette's TestClient) or against a real
`handoff ledger serve` (an httpx client): its login form, its tokens and its pages' text."""

from __future__ import annotations

import re

import httpx2 as httpx

T0 = 1_800_000_000.0


class Clock:
    """The console's clock in the test's hand: idle logout and lifetimes are minutes and hours."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def log_in(client: httpx.Client, name: str, password: str, follow: bool = False) -> httpx.Response:
    form = client.get("/login")
    return client.post(
        "/login",
        data={"csrf": csrf_of(form.text), "name": name, "password": password, "next": "/fleet"},
        follow_redirects=follow,
    )


def session_cookie(response: httpx.Response) -> str:
    headers = response.headers.get_list("set-cookie")
    found = [h for h in headers if h.startswith("__Host-handoff-session=")]
    assert found, headers
    return str(found[0])


def words(response: httpx.Response) -> str:
    """A page's text with the <bdi> elements that isolate each value taken out."""
    return re.sub(r"</?bdi[^>]*>", "", response.text)
