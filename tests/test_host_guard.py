"""The Host / Origin allow-list (studio/ui/host_guard.py) on Gradio's own app, built with the middleware
launch.py gives it: a forged Host (DNS rebinding) or a foreign Origin (a cross-site request) is refused
with 403 before any handler runs, on pages, on the queue's join and on its event stream, and for a
WebSocket; X-Forwarded-* never reach the app unless a proxy is configured."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import launch  # noqa: E402

from studio.ui.host_guard import AllowedHosts  # noqa: E402


@pytest.fixture()
def app(monkeypatch, tmp_path):
    import gradio as gr
    from gradio.routes import App

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")     # security_middleware sets it; monkeypatch restores
    secret = tmp_path / "private.csv"
    secret.write_text("card,pin\n4111,1234\n", encoding="utf-8")
    calls = []

    def read(path):
        calls.append(path)
        return Path(path).read_text(encoding="utf-8")

    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        box.submit(read, box, out, api_name="read")
    demo.queue()
    args = launch.build_parser().parse_args([])
    middleware, allowed = launch.security_middleware(args)
    fastapi_app = App.create_app(demo, app_kwargs={"middleware": middleware})
    return fastapi_app, calls, str(secret)


def _client(app, host="127.0.0.1:7860"):
    from starlette.testclient import TestClient
    return TestClient(app, base_url=f"http://{host}")


FORGED = {"host": "rebind.attacker.example:7860", "origin": "http://rebind.attacker.example:7860"}


def test_a_forged_host_is_refused_on_pages_and_on_the_queue(app):
    fastapi_app, calls, secret = app
    c = _client(fastapi_app)
    assert c.get("/gradio_api/info").status_code == 200        # the right Host is served
    assert c.get("/", headers=FORGED).status_code == 403
    assert c.get("/gradio_api/info", headers=FORGED).status_code == 403
    join = c.post("/gradio_api/queue/join", headers=FORGED,
                  json={"data": [secret], "fn_index": 0, "session_hash": "s1", "event_data": None, "trigger_id": 1})
    assert join.status_code == 403 and "rebind.attacker.example" in join.text
    stream = c.get("/gradio_api/queue/data", params={"session_hash": "s1"}, headers=FORGED)
    assert stream.status_code == 403 and "4111" not in stream.text
    assert c.get("/gradio_api/call/read/x", headers=FORGED).status_code == 403
    assert calls == []                                          # no handler ran


def test_a_foreign_origin_is_refused_even_with_the_right_host(app):
    fastapi_app, calls, secret = app
    c = _client(fastapi_app)
    body = {"data": [secret], "fn_index": 0, "session_hash": "s2", "event_data": None, "trigger_id": 1}
    for origin in ("http://evil.example", "null", "http://localhost:8888"):     # another local app's page too
        r = c.post("/gradio_api/queue/join", headers={"origin": origin}, json=body)
        assert r.status_code == 403, origin
    assert calls == []
    own = c.post("/gradio_api/queue/join", headers={"origin": "http://127.0.0.1:7860"}, json=body)
    assert own.status_code == 200                               # the studio's own page


def test_a_websocket_with_a_forged_host_is_closed(app):
    from starlette.websockets import WebSocketDisconnect
    fastapi_app, _, _ = app
    with pytest.raises(WebSocketDisconnect) as e:
        with _client(fastapi_app).websocket_connect("/gradio_api/anything", headers=FORGED):
            pass
    assert e.value.code == 1008


def test_forwarded_headers_are_ignored_without_a_proxy(monkeypatch):
    import asyncio

    from studio.ui.host_guard import HostGuardMiddleware
    seen = {}

    async def inner(scope, receive, send):
        seen["headers"] = dict(scope["headers"])

    def run(trust):
        mw = HostGuardMiddleware(inner, AllowedHosts("127.0.0.1"), trust_proxy=trust)
        scope = {"type": "http", "headers": [(b"host", b"127.0.0.1:7860"), (b"x-forwarded-for", b"10.9.9.9"),
                                             (b"x-forwarded-host", b"evil.example")]}
        asyncio.run(mw(scope, None, None))
        return seen["headers"]
    assert b"x-forwarded-for" not in run(False) and b"x-forwarded-host" not in run(False)
    assert run(True)[b"x-forwarded-for"] == b"10.9.9.9"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    launch.security_middleware(launch.build_parser().parse_args([]))
    import os
    assert os.environ["FORWARDED_ALLOW_IPS"] == "none"          # uvicorn believes no proxy either
    launch.security_middleware(launch.build_parser().parse_args(["--trusted-proxy", "10.0.0.2"]))
    assert os.environ["FORWARDED_ALLOW_IPS"] == "10.0.0.2"


def test_which_hosts_are_allowed():
    local = AllowedHosts("127.0.0.1")
    assert all(local.host_ok(h) for h in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860", "127.0.0.2", None))
    assert not any(local.host_ok(h) for h in ("rebind.attacker.example", "127.0.0.1.nip.io", "192.168.1.5:7860",
                                              "localhost.attacker.example"))
    lan = AllowedHosts("0.0.0.0", extra=["studio.lab.example"])
    assert lan.host_ok("192.168.1.5:7860") and lan.host_ok("studio.lab.example") and not lan.host_ok("evil.example")
    assert lan.origin_ok("https://studio.lab.example", "10.0.0.1:7860")     # a configured name, through a proxy
    assert not lan.origin_ok("http://evil.example", "192.168.1.5:7860")
    local.add("https://abc123.gradio.live")                       # the share link, once known
    assert local.host_ok("abc123.gradio.live") and not local.host_ok("other.gradio.live")
