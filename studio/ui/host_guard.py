"""Who may talk to the app: the ``Host`` / ``Origin`` allow-list against DNS rebinding and cross-site requests.

A web page the user visits can make the browser send requests to ``http://127.0.0.1:7860``. Two ways in:

* DNS rebinding: the page's own name (``rebind.attacker.example``) is made to resolve to 127.0.0.1, so the
  browser treats the studio as the attacker's site and lets the page read every answer. The request then
  carries ``Host: rebind.attacker.example``: refused unless the host is one the app was started for.
* A plain cross-site request (a form POST, ``fetch`` with ``mode: no-cors``): the browser sends it with
  the page's ``Origin`` and does not show the page the answer, but the action would still run. Refused
  unless ``Origin`` names this app itself (same host and port as ``Host``) or a name given with
  ``--allowed-host``.

``HostGuardMiddleware`` is the outermost middleware the studio adds to Gradio's app, so the refusal comes
before any route (pages, ``/gradio_api/queue/join``, the ``/gradio_api/queue/data`` event stream, uploads,
files) and for WebSocket connections too. Without a configured proxy it also drops ``X-Forwarded-*``
headers, which Gradio would otherwise use to build its URLs (uvicorn's own use of them is switched off by
``launch.py`` through ``FORWARDED_ALLOW_IPS``).

The host names accepted: ``localhost`` and any loopback address; the address the app listens on; names
given with ``--allowed-host`` and the share link's name; and, when it listens on the network, any IP
address literal (a rebinding page cannot make the browser send an address literal as its Host) and this
computer's own host name.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

_WILDCARDS = {"0.0.0.0", "::", ""}
_FORWARDED = (b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port", b"forwarded")


def _ip(name: str):
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return None


def host_name(value: str) -> str:
    """The host part of a ``Host`` header or netloc (``[::1]:7860`` → ``::1``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":")[0]
    return value      # a bare name, or an IPv6 address without brackets or port


class AllowedHosts:
    """The names this app answers to (see the module docstring). ``add`` takes more after start (the share link)."""

    def __init__(self, bind_host: str = "127.0.0.1", extra: tuple[str, ...] | list[str] = ()):
        bind = host_name(bind_host) if bind_host.strip() else ""
        bind_ip = _ip(bind)
        self.network = bind in _WILDCARDS or not (bind == "localhost" or (bind_ip is not None and bind_ip.is_loopback))
        self.names: set[str] = {"localhost"}
        self.configured: set[str] = set()
        if bind not in _WILDCARDS:
            self.names.add(bind)
        if self.network:
            for name in (socket.gethostname(), socket.getfqdn()):
                if name:
                    self.names.add(name.lower())
        for name in extra:
            self.add(name)

    def add(self, name: str) -> None:
        """A name given by the user (``--allowed-host``) or the share link: accepted as Host and as Origin."""
        name = host_name(urlsplit(name).hostname or name if "://" in name else name)
        if name:
            self.names.add(name)
            self.configured.add(name)

    def host_ok(self, host: str | None) -> bool:
        if host is None:
            return True        # HTTP/1.0 without Host: not a browser (every browser sends it)
        name = host_name(host)
        if name in self.names:
            return True
        ip = _ip(name)
        return ip is not None and (ip.is_loopback or self.network)

    def origin_ok(self, origin: str | None, host: str | None) -> bool:
        """No Origin (not a browser's cross-site request), or the app's own origin, or a configured name."""
        if origin is None:
            return True
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False      # "null" (sandboxed frames, file:// pages) and anything odd
        if host is not None and parts.netloc.lower() == host.strip().lower():
            return True
        return host_name(parts.netloc) in self.configured

    def refusal(self, host: str | None, origin: str | None) -> str | None:
        """Why a request with these headers is refused, or None when it is accepted."""
        if not self.host_ok(host):
            return (f"Refused: this studio does not answer to the name {host_name(host or '')!r} (a web page may be "
                    "trying to reach it). Open it as http://127.0.0.1 or localhost, or start it with "
                    "--allowed-host NAME to allow that name.")
        if not self.origin_ok(origin, host):
            return (f"Refused: a request from another site ({origin!r}) to this studio. Open the studio's own page; "
                    "a name of your own can be allowed with --allowed-host NAME.")
        return None


class HostGuardMiddleware:
    """ASGI middleware: refuse requests whose Host or Origin is not allowed, before anything else runs."""

    def __init__(self, app, allowed: AllowedHosts, trust_proxy: bool = False):
        self.app = app
        self.allowed = allowed
        self.trust_proxy = trust_proxy

    async def __call__(self, scope, receive, send):
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or []
        host = origin = None
        for name, value in headers:
            if name == b"host" and host is None:
                host = value.decode("latin-1")
            elif name == b"origin" and origin is None:
                origin = value.decode("latin-1")
        why = self.allowed.refusal(host, origin)
        if why is not None:
            if kind == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            body = why.encode("utf-8")
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})
        if not self.trust_proxy and any(name in _FORWARDED for name, _ in headers):
            scope = dict(scope, headers=[(n, v) for n, v in headers if n not in _FORWARDED])
        return await self.app(scope, receive, send)
