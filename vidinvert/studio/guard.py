"""The studio server's gate (an ASGI middleware in front of the page): who may ask, and for which files.

- **Host**: bound to this machine only, a request must name it (``127.0.0.1:PORT``, ``localhost:PORT``,
  ``[::1]:PORT``): a web page elsewhere cannot reach the studio by DNS rebinding.
- **Origin**: a request with an ``Origin`` must come from the page itself (``http://`` + its Host);
  ``Sec-Fetch-Site`` must be ``same-origin`` or ``none`` (typed in the address bar). Cross-origin
  requests are refused (403).
- **Token** (``--allow-remote``): every request carries the random access token, as the ``token``
  query parameter of the first address (it is then kept in a same-site cookie) or that cookie (401).
- **Files**: the file routes serve only files under the allowed folders (the input's, the output
  folder, the studio's temp folder); a ``..``, a URL (the server fetches nothing from elsewhere) or
  any other path is refused (403), and so is the proxy route.
"""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote

from vidinvert.studio.files import is_under

__all__ = ["COOKIE", "Guard", "refusal"]

COOKIE = "vidinvert_studio_token"
#: Routes that read a file named in the path (Gradio's; ``/gradio_api`` is its API prefix).
FILE_ROUTES = ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/file/")
#: Routes that would fetch from another host.
PROXY_ROUTES = ("/gradio_api/proxy=", "/proxy=")


def _file_refusal(path: str, roots: list[Path]) -> str | None:
    """Why a file route's path is refused (None: it may be served)."""
    for route in FILE_ROUTES:
        if path.startswith(route):
            target = unquote(path[len(route):])
            break
    else:
        return None
    if "://" in target or target.startswith(("http:", "https:", "data:")):
        return "the studio serves no URLs"
    if ".." in PurePosixPath(target).parts or "\\" in target:
        return "a path with '..' is refused"
    if not target.startswith("/") or not is_under(Path(target), roots):
        return "only files under the input's folder, the output folder and the studio's temp folder are served"
    return None


def refusal(path: str, headers: dict[str, str], *, hosts: set[str] | None, roots: list[Path],
            token: str | None, query_token: str | None) -> tuple[int, str] | None:
    """Why a request is refused, as ``(status, reason)``, or None. ``headers``: lower-case names;
    ``hosts``: the Host values accepted (None: any, with a token); ``query_token``: ``?token=``."""
    host = headers.get("host", "")
    if hosts is not None and host.lower() not in hosts:
        return 403, f"unknown Host {host!r}: open the address the studio printed"
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
        return 403, f"cross-origin request from {origin} refused"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return 403, "cross-site request refused"
    if token is not None:
        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header carries no token
            jar = SimpleCookie()
        given = query_token or (jar[COOKIE].value if COOKIE in jar else "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            return 401, "access token required: open the address with ?token=... that the studio printed at start"
    if any(path.startswith(r) for r in PROXY_ROUTES):
        return 403, "the studio fetches nothing from other hosts"
    why = _file_refusal(path, roots)
    return (403, why) if why else None


class Guard:
    """ASGI middleware applying :func:`refusal` to every HTTP and WebSocket request."""

    def __init__(self, app, *, roots: list[Path], hosts: set[str] | None, token: str | None = None) -> None:
        self.app, self.roots, self.hosts, self.token = app, [Path(r) for r in roots], hosts, token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        query_token = (query.get("token") or [None])[0]
        why = refusal(scope.get("path", ""), headers, hosts=self.hosts, roots=self.roots,
                      token=self.token, query_token=query_token)
        if why is not None:
            return await _refuse(scope, send, *why)
        if self.token is not None and query_token:
            send = _with_cookie(send, self.token)
        return await self.app(scope, receive, send)


async def _refuse(scope, send, status: int, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = (reason + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _with_cookie(send, token: str):
    """``send`` that adds the token cookie (HttpOnly, SameSite=Strict) to the response."""
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode()
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)
    return wrapped
