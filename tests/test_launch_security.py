"""launch.py as an attacker meets it: the loopback check resolves names, the login is limited and tells
nothing about the app before login, SSR stays off whatever the environment says, uploads are capped at
what the reader reads."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import launch  # noqa: E402


def test_a_name_that_merely_starts_with_127_is_not_loopback(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *a, **k):
        if host == "127.attacker.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.7", 0))]
        if host == "studio.internal":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
        return real(host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    assert not launch.is_loopback("127.attacker.example")
    with pytest.raises(SystemExit, match="without --auth"):
        launch.check_exposure("127.attacker.example", share=False, auth=None)
    assert launch.is_loopback("studio.internal") and launch.is_loopback("127.0.0.5") and launch.is_loopback("::1")
    assert not launch.is_loopback("no-such-host.invalid")


def test_the_upload_limit_is_the_readers_limit():
    from studio.data.read import DEFAULT_MAX_BYTES
    assert launch.upload_limit(None) == DEFAULT_MAX_BYTES
    assert launch.upload_limit("200mb") == 200 * 1024 * 1024 < DEFAULT_MAX_BYTES
    with pytest.raises(SystemExit, match="more than the largest data file"):
        launch.upload_limit("1gb")


def test_launch_turns_ssr_off_and_guards_the_login(tmp_path, monkeypatch):
    """What launch.py hands Gradio, with GRADIO_SSR_MODE=true in the environment."""
    import gradio as gr

    from studio.data.read import DEFAULT_MAX_BYTES
    from studio.ui.host_guard import HostGuardMiddleware
    from studio.ui.login_guard import LoginGuard, LoginPageMiddleware

    seen = {}

    def fake_launch(self, **kw):
        seen.update(kw)
        raise SystemExit("stop here")

    monkeypatch.setenv("GRADIO_SSR_MODE", "true")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "before"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    with pytest.raises(SystemExit, match="stop here"):
        launch.main(["--auth", "alice:pw", "--workspace", str(tmp_path / "ws"), "--model", str(tmp_path)])
    assert seen["ssr_mode"] is False and seen["max_file_size"] == DEFAULT_MAX_BYTES
    guard = seen["auth"].__self__
    assert isinstance(guard, LoginGuard) and guard.users == {"alice": "pw"}
    assert [m.cls for m in seen["app_kwargs"]["middleware"]] == [HostGuardMiddleware, LoginPageMiddleware]   # outermost first


@pytest.fixture()
def guarded_app(tmp_path, tiny_dir):
    from e2e.conftest import free_port, tiny_config
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "GRADIO_SSR_MODE": "true"}
    env.pop("STUDIO_HOME", None)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "launch.py"), "--port", str(port), "--auth", "alice:s3cret",
                                 "--login-attempts", "3", "--login-lockout", "2", "--workspace", str(tmp_path / "ws"),
                                 "--config", str(tiny_config(tiny_dir, tmp_path / "tiny.yaml"))],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            while "running at" not in log_path.read_text(encoding="utf-8"):
                assert proc.poll() is None and time.time() < deadline, log_path.read_text(encoding="utf-8")
                time.sleep(0.3)
            yield f"http://127.0.0.1:{port}", tmp_path / "ws", log_path
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_login_lockout_and_nothing_about_the_app_before_login(guarded_app):
    import httpx

    url, workspace, log_path = guarded_app
    here = httpx.Client(base_url=url, timeout=30)
    other = httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2"))

    page = here.get("/")
    assert page.status_code == 200 and '"auth_required":true' in page.text
    assert "start_training" not in page.text and "training_max_steps" not in page.text   # no API description
    assert here.get("/gradio_api/info").status_code == 401

    wrong = [here.post("/login", data={"username": "alice", "password": "guess"}).status_code for _ in range(5)]
    assert wrong == [400, 400, 400, 429, 429]
    right = here.post("/login", data={"username": "alice", "password": "s3cret"})
    assert right.status_code == 429 and "Too many failed logins from this address" in right.json()["detail"]
    for forged in ("10.9.9.9", "127.0.0.3"):     # a forwarded address from 127.0.0.1 is not believed
        again = here.post("/login", data={"username": "alice", "password": "s3cret"},
                          headers={"X-Forwarded-For": forged})
        assert again.status_code == 429, forged
    rebound = here.get("/", headers={"Host": "rebind.attacker.example"})
    assert rebound.status_code == 403 and "auth_required" not in rebound.text
    assert other.post("/login", data={"username": "alice", "password": "s3cret"}).status_code == 200
    time.sleep(2.5)                                                            # the 2-second lockout ends
    assert here.post("/login", data={"username": "alice", "password": "s3cret"}).status_code == 200
    after = here.get("/")
    assert "start_training" in after.text                                     # logged in: the app itself

    assert "locked out for address '127.0.0.1'" in (workspace / "security.log").read_text(encoding="utf-8")
    log = log_path.read_text(encoding="utf-8")
    assert "locked out" in log and "Traceback" not in log
