"""Sign-in through the hospital's OpenID provider: the authorization code flow with PKCE, by
Authlib, which checks the state, the nonce and the ID token (signature under the provider's
published keys, issuer, audience, expiry); the console only decides who that makes.

What the flow must remember between leaving for the provider and coming back (state, nonce, PKCE
verifier, where to go next) rides in a cookie of its own, signed with a key derived from the
client secret, so every console process can read it; it is sent only to /login/oidc/ and lives ten
minutes. It is SameSite=Lax, as it must come back on the provider's cross-site redirect; the
console's session cookie stays Strict, which is why the sign-in ends on a page of the console's
own that moves on to the console, not on a redirect the browser would treat as cross-site.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from handoff.ledger.accounts import audit
from handoff.ledger.config import OidcConfig
from handoff.ledger.console.pages import Site, local_target
from handoff.ledger.oidc_accounts import admit, name_for, role_for
from handoff.secret_file import read_private

PATH: Final = "/login/oidc"
FLOW_S: Final = 600
log = logging.getLogger("handoff.ledger.console")


class OidcSignIn:
    def __init__(self, site: Site, config: OidcConfig) -> None:
        self._site, self._config = site, config
        secret = read_private(config.client_secret_file, "oidc.client_secret_file").decode()
        self._client: Any = OAuth().register(
            "provider",
            client_id=config.client_id,
            client_secret=secret,
            server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": " ".join(config.scopes), "code_challenge_method": "S256"},
        )
        self._claims = {
            "iss": {"essential": True, "values": [config.issuer]},
            "aud": {"essential": True, "values": [config.client_id]},
            "exp": {"essential": True},
        }
        """What the ID token must say, beyond what Authlib checks by itself: its own default checks
        the audience only through `azp`, so a token for another audience that names this console as
        its authorized party would pass."""
        self._flow_key = hmac.new(secret.encode(), b"handoff console sign-in flow", hashlib.sha256).hexdigest()

    def routes(self) -> list[Route]:
        flow = Middleware(
            SessionMiddleware,
            secret_key=self._flow_key,
            session_cookie=f"{'__Secure-' if self._site.secure else ''}handoff-oidc",
            max_age=FLOW_S,
            path=PATH,
            same_site="lax",
            https_only=self._site.secure,
        )
        return [
            Route(PATH, self.start, middleware=[flow]),
            Route(f"{PATH}/callback", self.callback, middleware=[flow], name="oidc_callback"),
        ]

    async def start(self, request: Request) -> Response:
        request.session.clear()
        request.session["next"] = local_target(request.query_params.get("next"))
        try:
            response: Response = await self._client.authorize_redirect(request, str(request.url_for("oidc_callback")))
        except httpx.HTTPError as exc:
            log.warning("OpenID provider %s unreachable: %s", self._config.issuer, exc)
            return self._refused(request, 502, "The sign-in service did not answer. Try again in a moment.")
        return response

    async def callback(self, request: Request) -> Response:
        site = self._site
        address = request.client.host if request.client else "unknown"
        target = local_target(request.session.get("next"))
        try:
            token = await self._client.authorize_access_token(request, claims_options=self._claims)
            claims = dict(token.get("userinfo") or {})
            if claims and self._config.roles_claim not in claims:
                given = await self._client.userinfo(token=token)
                if given.get("sub") == claims["sub"]:
                    claims = {**given, **claims}
        except (AuthlibBaseError, JoseError) as exc:
            return await self._deny(request, address, f"the provider's answer did not verify ({_said(exc)})")
        except httpx.HTTPError as exc:
            log.warning("OpenID provider %s unreachable: %s", self._config.issuer, exc)
            return self._refused(request, 502, "The sign-in service did not answer. Try again in a moment.")
        finally:
            request.session.clear()
        if not claims:
            return await self._deny(request, address, "the provider sent no ID token")
        name, subject = name_for(claims), str(claims["sub"])
        role = role_for(claims, self._config.roles_claim, self._config.roles)
        if name is None or role is None:
            hint = (
                f"If you should have access, ask the console's administrator to add you at {self._config.name} "
                "to a group that gives a console role."
            )
            return await self._deny(
                request,
                address,
                f"{name or subject} has no {self._config.roles_claim!r} value that gives a console role",
                hint,
            )
        now, id_token = site.clock(), token.get("id_token")

        def record(conn: Connection) -> tuple[str | None, str | None]:
            problem = admit(conn, now, address, name, subject, role)
            if problem:
                audit(conn, now, name, "login_refused", f"{address} (OpenID Connect): {problem}")
                return problem, None
            token, _ = site.sessions.begin(conn, name, request.cookies.get(site.cookie), id_token)
            return None, token

        problem, session = await run_in_threadpool(site.write, record)
        if session is None:
            return self._refused(request, 403, f"The console refused this sign-in: {problem}.")
        response = site.page(request, "signed_in.html", next=target, who=name)
        site.set_cookie(response, site.cookie, session)
        return response

    async def sign_out(self, request: Request, id_token: str) -> Response:
        """After the console's own logout of a login made here: on to the provider's end-session
        endpoint (RP-initiated logout), which ends the person's session there and sends them back
        to the console's login page; a shared ward computer must not stay signed in at the
        provider, where the next "Sign in with" would take the last person's identity without a
        password. A provider that has no such endpoint, or cannot be reached, leaves only the
        console's logout done, and the log says so."""
        try:
            metadata = await self._client.load_server_metadata()
        except httpx.HTTPError as exc:
            log.warning("OpenID provider %s unreachable at logout: %s", self._config.issuer, exc)
            return RedirectResponse("/login", status_code=303)
        endpoint = metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            log.warning("OpenID provider %s has no end_session_endpoint; console logout only", self._config.issuer)
            return RedirectResponse("/login", status_code=303)
        asked = {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": str(request.url_for("login")),
            "client_id": self._config.client_id,
        }
        return RedirectResponse(f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(asked)}", status_code=303)

    async def _deny(self, request: Request, address: str, why: str, hint: str = "") -> Response:
        """A sign-in the console refuses, audited with the reason."""
        now = self._site.clock()
        await run_in_threadpool(
            self._site.write,
            lambda conn: audit(conn, now, "oidc", "login_refused", f"{address} (OpenID Connect): {why}"),
        )
        return self._refused(request, 403, f"The console refused this sign-in: {why}.", hint)

    def _refused(self, request: Request, status: int, detail: str, hint: str = "") -> Response:
        return self._site.page(request, "sign_in_refused.html", status, detail=detail, hint=hint)


def _said(exc: Exception) -> str:
    """An Authlib or joserfc error in a few words: its error code and description, no token."""
    error = getattr(exc, "error", "") or type(exc).__name__
    description = getattr(exc, "description", "") or ""
    return f"{error}: {description}"[:200].rstrip(": ")
