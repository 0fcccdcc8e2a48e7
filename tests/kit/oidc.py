"""A real, OpenID-certified provider on loopback for the console's sign-in tests: the
`oidc-provider` npm package on Node, run by tests/kit/oidc_provider/provider.mjs, with its
development login pages (any name, any password) and the groups each name carries.

`make setup` installs the package from the kit's lock file into .venv/oidc-provider; a test run
on a tree where that is missing or stale does the same once (under a lock, for xdist workers)."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from handoff.testing.net import free_tcp_port, wait_listening
from tests.kit.cli import REPO

KIT: Final = Path(__file__).resolve().parent / "oidc_provider"
INSTALLED: Final = REPO / ".venv" / "oidc-provider"
FILES: Final = ("package.json", "package-lock.json")
CLIENT_ID: Final = "handoff-console"
CLIENT_SECRET: Final = "a test client secret of the console"


NODE_MAJOR: Final = 20
"""oidc-provider 9 needs Node 20 or later (Debian 12's own nodejs is 18; NodeSource's is 20)."""


def provider_modules() -> Path:
    """The node_modules `npm ci` made from the kit's lock file."""
    version = subprocess.run(["node", "--version"], check=True, capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        raise RuntimeError(f"node {version}: the kit's OpenID provider needs Node {NODE_MAJOR} or later")
    INSTALLED.mkdir(parents=True, exist_ok=True)
    with (INSTALLED / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = all(
            (INSTALLED / name).is_file() and (INSTALLED / name).read_bytes() == (KIT / name).read_bytes()
            for name in FILES
        )
        if not (current and (INSTALLED / "node_modules" / "oidc-provider").is_dir()):
            for name in FILES:
                shutil.copyfile(KIT / name, INSTALLED / name)
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(INSTALLED)],
                check=True,
                capture_output=True,
                timeout=300,
            )
    return INSTALLED / "node_modules"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    log: Path
    groups_file: Path

    def set_groups(self, groups: Mapping[str, list[str]]) -> None:
        """Each login name's `groups` claim from the next sign-in on (a name not in it has none)."""
        self.groups_file.write_text(json.dumps(dict(groups)))


@contextmanager
def oidc_provider(
    root: Path,
    redirect_uris: Sequence[str],
    groups: Mapping[str, list[str]],
    *,
    port: int = 0,
    code_ttl_s: int = 60,
    forge_audience: str = "",
    post_logout_redirect_uris: Sequence[str] = (),
) -> Iterator[Provider]:
    """The provider on a free loopback port with the console registered as a confidential
    client (`CLIENT_ID`, `CLIENT_SECRET`) at `redirect_uris`. `groups`: each login name's
    `groups` claim (a name not in it has none), until `Provider.set_groups`. `forge_audience`:
    the forger, whose ID tokens name that audience instead, signed by the provider's own key.
    `port`: one chosen beforehand (the console's config names the issuer before the provider
    starts), else a free one. `post_logout_redirect_uris`: where its end-session endpoint may
    send a browser back to after a logout the console began."""
    port = port or free_tcp_port()
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
    }
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "OIDC_MODULES": str(provider_modules()),
        "OIDC_PORT": str(port),
        "OIDC_CLIENT": json.dumps(client),
        "OIDC_GROUPS_FILE": str(root / "oidc-groups.json"),
        "OIDC_CODE_TTL": str(code_ttl_s),
        "OIDC_FORGE_AUDIENCE": forge_audience,
    }
    log = root / "oidc-provider.log"
    provider = Provider(f"http://127.0.0.1:{port}", CLIENT_ID, log, root / "oidc-groups.json")
    provider.set_groups(groups)
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["node", str(KIT / "provider.mjs")], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        wait_listening(process, port, log)
        yield provider
    finally:
        process.terminate()
        process.wait(10)


def client_secret_file(root: Path) -> Path:
    """The console's copy of the client secret, private as `oidc.client_secret_file` must be."""
    path = root / "oidc-client-secret"
    path.write_text(CLIENT_SECRET + "\n")
    path.chmod(0o600)
    return path
