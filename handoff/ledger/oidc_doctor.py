"""`handoff ledger doctor`'s checks of the `[oidc]` sign-in, before anyone tries it: the
provider's discovery document is reachable and names the issuer configured, the client's id and
secret are there, and the address the provider sends people back to is https (or loopback).

A wrong issuer otherwise shows only as every sign-in refused, with the reason in the log; a
provider without an end-session endpoint as logouts that leave people signed in there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import httpx

from handoff.doctor.result import CheckResult, failed, passed, skipped, warned
from handoff.errors import ConfigError
from handoff.ledger.config import ConsoleConfig, OidcConfig
from handoff.secret_file import read_private

WAIT_S: Final = 5.0
NEEDED: Final = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def checks(oidc: OidcConfig, console: ConsoleConfig) -> list[Callable[[], CheckResult]]:
    """One line each; the issuer is compared once discovery has answered."""
    found: dict[str, Any] = {}

    def discovery() -> CheckResult:
        result, document = check_discovery(oidc)
        found.update(document)
        return result

    return [
        discovery,
        lambda: check_issuer(oidc, found),
        lambda: check_client(oidc),
        lambda: check_redirect(console),
    ]


def check_discovery(oidc: OidcConfig) -> tuple[CheckResult, dict[str, Any]]:
    url = f"{oidc.issuer}/.well-known/openid-configuration"
    try:
        answer = httpx.get(url, timeout=WAIT_S, follow_redirects=False)
    except httpx.HTTPError as exc:
        return failed("oidc discovery", f"{url}: cannot be reached ({exc}); check oidc.issuer"), {}
    if answer.status_code != 200:
        return failed("oidc discovery", f"{url}: answered HTTP {answer.status_code}; check oidc.issuer"), {}
    try:
        document = answer.json()
    except ValueError:
        return failed("oidc discovery", f"{url}: did not answer JSON; check oidc.issuer"), {}
    if not isinstance(document, dict):
        return failed("oidc discovery", f"{url}: did not answer a JSON object; check oidc.issuer"), {}
    missing = [name for name in NEEDED if not isinstance(document.get(name), str)]
    if missing:
        return failed("oidc discovery", f"{url}: lists no {', '.join(missing)}"), document
    if not isinstance(document.get("end_session_endpoint"), str):
        return (
            warned(
                "oidc discovery",
                f"{url}: reachable, but lists no end_session_endpoint: a console logout will not end "
                "the person's session at the provider",
            ),
            document,
        )
    return passed("oidc discovery", f"{url}: reachable, with its end-session endpoint"), document


def check_issuer(oidc: OidcConfig, document: dict[str, Any]) -> CheckResult:
    """OpenID Connect Discovery: the document's issuer is exactly the URL it was fetched under,
    and every ID token must name it; a mismatch refuses every sign-in."""
    if not document:
        return skipped("oidc issuer", "not compared: the discovery document was not read")
    said = document.get("issuer")
    if said != oidc.issuer:
        return failed(
            "oidc issuer", f"the provider calls itself {str(said)[:200]!r}, oidc.issuer is {oidc.issuer!r}: set it so"
        )
    return passed("oidc issuer", f"{oidc.issuer} matches the discovery document")


def check_client(oidc: OidcConfig) -> CheckResult:
    try:
        secret = read_private(oidc.client_secret_file, "oidc.client_secret_file")
    except ConfigError as exc:
        return failed("oidc client", str(exc))
    if not secret:
        return failed("oidc client", f"oidc.client_secret_file: {oidc.client_secret_file} is empty")
    return passed("oidc client", f"client id {oidc.client_id!r}, its secret in {oidc.client_secret_file}")


def check_redirect(console: ConsoleConfig) -> CheckResult:
    """The console is https itself, behind a TLS proxy on its own host, or plain http on
    loopback (`allow_insecure`): the configuration allows nothing else, and this line says
    which address to register at the provider."""
    path = "/login/oidc/callback"
    if console.tls:
        return passed("oidc redirect", f"https://{console.listen}{path} (or the name browsers use for this host)")
    if console.allow_insecure:
        return passed("oidc redirect", f"http://{console.listen}{path}: loopback only (a lab bench or a demo)")
    return passed("oidc redirect", f"https://PROXY-HOST{path}, through the TLS proxy in front of {console.listen}")
