"""The login of ``launch.py --auth``: a limit on guessing passwords, and nothing about the app before login.

Gradio checks a password as often as it is asked (hundreds a second). ``LoginGuard`` counts failed
logins per client address and per user name: after ``slow_after`` failures every further failure is
answered ``delay_s`` later; after ``max_failures`` from one address that address is locked out for
``lockout_s`` (doubling with each further lockout). While an address is locked out, every login from it
is refused with HTTP 429 and a sentence that says until when, even with the right password, and the
password is not checked at all (no answer to learn from).

After ``user_max_failures`` failures on one user name from anywhere (a guess spread over many addresses),
that name is locked out too, but only for addresses the name has never logged in from: the owner, from an
address they logged in from before, still logs in with the right password, so a stranger's guesses
cannot lock the owner out. Every name counts the same, known or not (a name that never locks would tell
a guesser which names exist). A successful login clears the counts of its address and name and
remembers the address for the name. Each lockout is logged (logger ``studio.login``).

The client's address is the connection's own: ``X-Forwarded-For`` is not believed unless ``launch.py``
was told the proxy's address (``--trusted-proxy``), so a client cannot give itself fresh addresses.

``LoginPageMiddleware`` (an ASGI middleware given to Gradio's app) tells the guard the client's
address, removes the API description that Gradio embeds in every page (``window.gradio_api_info``)
from the login page, and adds a small script that shows the lockout sentence on that page (Gradio's
login form only knows "Incorrect credentials").
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("studio.login")
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("studio_login_client", default="unknown")


class LockedOut(Exception):
    """Logins are refused for a while; the message says so and for how long."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Count:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    return f"{round(seconds / 60)} minutes"


class LoginGuard:
    """Checks logins against ``users`` with a failure limit. ``check`` is Gradio's ``auth`` function (a
    bound coroutine function: Gradio awaits ``auth`` only when ``inspect.iscoroutinefunction`` says so,
    and an awaitable returned by a plain call would count as a successful login)."""

    def __init__(self, users: list[tuple[str, str]], max_failures: int = 10, lockout_s: float = 300.0,
                 slow_after: int = 5, delay_s: float = 0.5, user_max_failures: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.users = dict(users)
        self.max_failures = max_failures
        self.user_max_failures = user_max_failures or 5 * max_failures
        self.lockout_s = lockout_s
        self.slow_after = slow_after
        self.delay_s = delay_s
        self.clock = clock
        self._counts: dict[tuple[str, str], _Count] = {}
        self._known: dict[str, set[str]] = {}      # user name -> addresses it logged in from

    # ---- the rule ---------------------------------------------------------------------------
    def attempt(self, client: str, user: str, password: str) -> tuple[bool, float]:
        """(accepted, seconds to wait before answering). Raises LockedOut while the address or name is locked."""
        now = self.clock()
        name = user.strip().lower()
        keys = (("address", client), ("user", name))
        for kind, value in keys:
            c = self._counts.get((kind, value))
            if kind == "user" and client in self._known.get(name, ()):
                continue          # the owner's own address: a stranger's guesses on the name do not lock it
            if c is not None and c.locked_until > now:
                left = c.locked_until - now
                who = "from this address" if kind == "address" else f"for the user name '{user}'"
                raise LockedOut(f"Too many failed logins {who}: logins are refused for {_minutes(left)}. "
                                "Try again after that (with the right password).", left)
        expected = self.users.get(user.strip())
        ok = expected is not None and hmac.compare_digest(password.encode("utf-8"), expected.encode("utf-8"))
        if ok:
            for key in keys:
                self._counts.pop(key, None)
            known = self._known.setdefault(name, set())
            if len(known) < 100:
                known.add(client)
            return True, 0.0
        delay = 0.0
        self._prune(now)
        for kind, value in keys:
            c = self._counts.setdefault((kind, value), _Count())
            c.failures += 1
            limit = self.max_failures if kind == "address" else self.user_max_failures
            if c.failures >= limit:
                duration = self.lockout_s * 2 ** c.lockouts
                c.lockouts += 1
                c.failures = 0
                c.locked_until = now + duration
                log.warning("Login locked out for %s %r after %d failed logins (user name tried: %r); "
                            "refusing logins for %s.", kind, value, limit, user, _minutes(duration))
            elif kind == "address" and c.failures > self.slow_after:
                delay = self.delay_s
        return False, delay

    def _prune(self, now: float, keep: int = 10_000) -> None:
        """Forget counts that lock nothing once there are many (a scan from many addresses)."""
        if len(self._counts) > keep:
            for key in [k for k, c in self._counts.items() if c.locked_until <= now]:
                del self._counts[key]

    # ---- Gradio's auth callable ---------------------------------------------------------------
    async def check(self, username: str, password: str) -> bool:
        from fastapi import HTTPException
        try:
            ok, delay = self.attempt(CLIENT.get(), username, password)
        except LockedOut as e:
            raise HTTPException(status_code=429, detail=str(e),
                                headers={"Retry-After": str(int(e.retry_after_s) + 1)}) from None
        if delay:
            await asyncio.sleep(delay)
        return ok


_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.DOTALL)
_LOGIN_PAGE = (b'"auth_required":true', b'"auth_required": true')
# Shows the 429 sentence on Gradio's login form, which itself only reacts to 400 ("Incorrect credentials").
_LOCKOUT_SCRIPT = (
    b"<script>(function(){var f=window.fetch;window.fetch=async function(u,o){var r=await f.apply(this,arguments);"
    b"try{if(o&&o.method==='POST'&&/\\/login\\/?$/.test(String(u))&&r.status===429){var d=await r.clone().json();"
    b"var e=document.getElementById('studio-login-lockout');if(!e){e=document.createElement('div');"
    b"e.id='studio-login-lockout';e.setAttribute('role','alert');e.style.cssText='position:fixed;top:0;left:0;"
    b"right:0;padding:12px;background:#fee2e2;color:#991b1b;font:600 15px sans-serif;text-align:center;z-index:9999';"
    b"document.body.appendChild(e);}e.textContent=d.detail;}}catch(x){}return r;};})();</script>")


class LoginPageMiddleware:
    """ASGI middleware: the client's address for the guard; no API description on the login page."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        token = CLIENT.set((scope.get("client") or ("unknown", 0))[0])
        try:
            if scope.get("method") == "GET":
                return await self.app(scope, receive, _PageRewriter(send))
            return await self.app(scope, receive, send)
        finally:
            CLIENT.reset(token)


class _PageRewriter:
    """Buffers an HTML response; if it is the login page, drops the embedded API description."""

    def __init__(self, send):
        self.send = send
        self.start: dict | None = None
        self.chunks: list[bytes] = []
        self.html = False

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            headers = dict((k.lower(), v) for k, v in message.get("headers", []))
            self.html = headers.get(b"content-type", b"").startswith(b"text/html")
            if not self.html:
                return await self.send(message)
            self.start = message
            return None
        if message["type"] != "http.response.body" or not self.html:
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return None
        body = b"".join(self.chunks)
        if any(mark in body for mark in _LOGIN_PAGE):
            body = _API_INFO.sub(lambda m: b"window.gradio_api_info = {\"named_endpoints\": {}, "
                                           b"\"unnamed_endpoints\": {}};</script>" + _LOCKOUT_SCRIPT, body, count=1)
        start = dict(self.start or {})
        start["headers"] = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        start["headers"].append((b"content-length", str(len(body)).encode()))
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body})
