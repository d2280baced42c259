"""Start the studio in the browser.

    python launch.py                              # http://127.0.0.1:7860, on this computer only
    python launch.py --port 8000 --workspace ~/studio
    python launch.py --host 0.0.0.0 --auth alice:secret      # on the network: a password is required
    python launch.py --share --auth users.txt                # users.txt: one "user:password" per line

The first screen has the built-in default model, the demo data and the cpu-demo preset (the settings
measured to teach the built-in model the demo's facts) chosen, so pressing Start on the Train tab works
at once. ``--model``, ``--data``,
``--preset`` and ``--config`` choose something else to start from.

Requests whose ``Host`` or ``Origin`` names another site are refused before anything runs (a web
page cannot drive the app through DNS rebinding: studio/ui/host_guard.py); ``X-Forwarded-For`` is
ignored unless ``--trusted-proxy`` names the proxy. With a login (``--auth``), failed logins are
limited (see studio/ui/login_guard.py) and the login page tells nothing about the app. Ctrl-C or
SIGTERM stops a training run the app is doing (its adapter is saved) before the server closes.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path


def port_number(value: str) -> int:
    """A TCP port, 1 to 65535 (a larger one made the server start fail with an OverflowError traceback)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1 to 65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: ports go from 1 to 65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python launch.py", description="The fine-tuning studio in your browser.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=port_number, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also make a public gradio.live link (needs --auth)")
    p.add_argument("--auth", metavar="USER:PASS|FILE",
                   help="require a login: USER:PASS, or a file with one user:password per line")
    p.add_argument("--workspace", metavar="DIR",
                   help="where runs, uploads and the model cache live (sets STUDIO_HOME)")
    p.add_argument("--max-file-size", default=None,
                   help="largest upload, e.g. 200mb (default and most: 500mb, the largest data file the studio reads)")
    p.add_argument("--login-attempts", type=int, default=10, metavar="N",
                   help="with --auth: failed logins from one address before it is locked out (default 10)")
    p.add_argument("--login-lockout", type=float, default=300, metavar="SECONDS",
                   help="with --auth: how long the first lockout lasts; each further one doubles (default 300)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="another name the studio may be opened as (e.g. a DNS name or a proxy's); others are refused")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS",
                   help="a reverse proxy's address whose X-Forwarded-For is believed (default: none is)")
    p.add_argument("--queue-size", type=int, default=64, help="requests that may wait in the queue (default 64)")
    p.add_argument("--model", metavar="SOURCE", help="base model to start with: default, a Hub id, folder or .gguf")
    p.add_argument("--data", metavar="FILE", help="training data to start with: demo, a file or a Hub dataset id")
    p.add_argument("--preset", help="preset to start with (default: cpu-demo, unless --model names another model on a GPU)")
    p.add_argument("--config", metavar="FILE", help="a config YAML to start with (as written by the Settings tab)")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="interface language at first (en or zh)")
    return p


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (this computer only). The name is
    resolved and the addresses checked: '127.attacker.example' is a name, not 127.x.x.x. A name that
    does not resolve is not loopback."""
    host = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0].split("%")[0] for info in infos}
    try:
        return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    except ValueError:
        return False


def upload_limit(value: str | None) -> int:
    """Bytes an upload may have: the data reader's limit, or less when asked (more would only be refused later)."""
    from studio.data.read import DEFAULT_MAX_BYTES
    if not value:
        return DEFAULT_MAX_BYTES
    from gradio.utils import _parse_file_size
    try:
        asked = int(_parse_file_size(value))
    except (ValueError, TypeError):
        raise SystemExit(f"--max-file-size {value!r}: give a size such as 200mb.") from None
    if asked > DEFAULT_MAX_BYTES:
        raise SystemExit(f"--max-file-size {value} is more than the largest data file the studio reads "
                         f"({DEFAULT_MAX_BYTES // 2**20} MB); leave it out or give less.")
    return asked


def log_logins(home: Path) -> None:
    """Lockouts go to the terminal and to <workspace>/security.log."""
    logger = logging.getLogger("studio.login")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(home / "security.log", encoding="utf-8")):
        handler.setFormatter(fmt)
        logger.addHandler(handler)


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """``USER:PASS`` or a file of such lines (blank lines and # comments skipped). SystemExit if malformed."""
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        where = f"in {path}"
    elif ":" in value:
        lines, where = [value], "in --auth"
    else:
        raise SystemExit(f"--auth {value!r}: give USER:PASS or the path of a file with one user:password per line.")
    users = []
    for ln in lines:
        user, sep, pw = ln.partition(":")
        if not sep or not user.strip() or not pw:
            raise SystemExit(f"A login {where} is not of the form user:password: {ln!r}.")
        users.append((user.strip(), pw))
    if not users:
        raise SystemExit(f"No user:password lines {where}.")
    return users


def check_exposure(host: str, share: bool, auth) -> None:
    """Refuse to open the studio to other computers without a login: it can read files, start
    GPU jobs and run models on this machine for anyone who reaches it."""
    if auth:
        return
    if share:
        raise SystemExit("Refusing --share without --auth: a public link would let anyone on the internet use this "
                         "computer's GPU and read the files the studio can reach. Add --auth USER:PASS.")
    if not is_loopback(host):
        raise SystemExit(f"Refusing to listen on {host} without --auth: everyone on the network could use this "
                         "computer's GPU and files. Add --auth USER:PASS, or leave --host at 127.0.0.1.")


def set_workspace(workspace: str | None) -> Path:
    """STUDIO_HOME and Gradio's temp dir (inside the workspace); before gradio is imported, which reads it."""
    if workspace:
        os.environ["STUDIO_HOME"] = str(Path(workspace).expanduser().resolve())
    from studio import paths
    from studio.errors import StudioError
    try:
        home = paths.workspace()
    except StudioError as e:     # STUDIO_HOME or --workspace names a file, or a folder that cannot be made
        raise SystemExit(str(e).replace("(STUDIO_HOME)", "(--workspace or STUDIO_HOME)")) from None
    tmp = home / "gradio-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(tmp)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # nothing leaves the machine unasked
    return home


def initial_config(args) -> tuple:
    """The config the widgets show at first, and the preset it came from."""
    from studio.config import StudioConfig, merge
    from studio.presets import load_preset

    preset = args.preset
    if args.config:
        cfg = StudioConfig.load(args.config)
    else:
        if preset is None:      # the built-in model's demo settings; on a GPU only for the built-in model
            preset = "cpu-demo" if not (args.model and _has_cuda()) else None
        cfg = load_preset(preset) if preset else StudioConfig()
    over: dict = {}
    if args.model:
        over["model"] = {"source": args.model}
    if args.data:
        over["data"] = {"file": args.data}
    return merge(cfg, over), (None if args.config else preset)


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def warm_up(model_source: str = "") -> threading.Thread:
    """Import the engine (torch, transformers...) in the background while the browser loads the page,
    so the first clicks do not wait ten seconds for imports; and when the first screen's model is the
    built-in one and not yet converted from its GGUF, convert it now (17 s on two CPU cores, the first
    Start's wait otherwise; sources.py's lock makes a Start during it wait for it, not convert twice).
    A failure here is reported by the action that needs it."""
    import importlib

    def run() -> None:
        for name in ("studio.models.load", "studio.jobs", "studio.data.pipeline", "studio.inference"):
            try:
                importlib.import_module(name)
            except Exception:
                pass
        try:
            from studio.models.sources import is_builtin, resolve_source
            if is_builtin(model_source):
                resolve_source("default")
        except Exception:
            pass
    thread = threading.Thread(target=run, name="engine-warm-up", daemon=True)
    thread.start()
    return thread


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


_last_stop: list[float] = []


def _on_sigterm(signum, frame):
    """SIGTERM as Ctrl-C; the same signal again within a second is the same stop (``timeout`` sends it to
    the process and then to its process group), not the "again" that quits without saving."""
    import time
    now = time.monotonic()
    if _last_stop and now - _last_stop[-1] < 1.0:
        return
    _last_stop.append(now)
    raise _Terminated()


def stop_training_before_exit() -> None:
    """Ctrl-C / SIGTERM while the app trains: stop the run and wait until its adapter is saved."""
    jobs = sys.modules.get("studio.jobs")
    job = jobs.get_manager().current() if jobs else None
    if job is None or not job.active:
        return
    print("Stopping the training run and saving its adapter before quitting (Ctrl+C again quits at once)...",
          flush=True)
    try:
        job.stop()
        job.join()
        print(f"Saved: {job.message}", flush=True)
    except KeyboardInterrupt:
        print("Quit without saving.", flush=True)
        os._exit(130)   # a normal exit would wait for, or abort inside, the training thread


def security_middleware(args) -> tuple[list, "AllowedHosts"]:  # noqa: F821
    """The middleware launch.py gives Gradio's app, outermost first, and the host allow-list (the share
    link's name is added to it once known). Also tells uvicorn which proxies' forwarded headers to believe:
    by default none (uvicorn believes 127.0.0.1's), so a client cannot pick its own address."""
    from starlette.middleware import Middleware

    from studio.ui.host_guard import AllowedHosts, HostGuardMiddleware
    from studio.ui.login_guard import LoginPageMiddleware

    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(args.trusted_proxy) or "none"
    allowed = AllowedHosts(args.host, extra=args.allowed_host)
    return [Middleware(HostGuardMiddleware, allowed=allowed, trust_proxy=bool(args.trusted_proxy)),
            Middleware(LoginPageMiddleware)], allowed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    auth = parse_auth(args.auth)
    check_exposure(args.host, args.share, auth)
    home = set_workspace(args.workspace)
    max_upload = upload_limit(args.max_file_size)

    from studio.errors import ConfigError
    try:
        cfg, preset = initial_config(args)
    except ConfigError as e:
        raise SystemExit(str(e)) from None

    from studio.ui.app import AppOptions, build_app, css
    from studio.ui.login_guard import LoginGuard

    guard = None
    if auth:
        guard = LoginGuard(auth, max_failures=max(1, args.login_attempts), lockout_s=max(1.0, args.login_lockout))
        log_logins(home)
    demo = build_app(AppOptions(config=cfg, preset=preset, lang=args.lang))
    demo.queue(max_size=args.queue_size, default_concurrency_limit=4)
    exports = home / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    middleware, allowed = security_middleware(args)
    # Signals go to the main thread only: every thread the server (and later training) starts inherits
    # this mask, so a Ctrl-C never lands in a worker or in one of torch's native threads.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=guard.check if guard else None,
                    max_file_size=max_upload, allowed_paths=[str(exports)], css=css(),
                    prevent_thread_lock=True, quiet=True, footer_links=["api", "settings"], show_error=False,
                    ssr_mode=False,   # not needed, and GRADIO_SSR_MODE must not switch it on behind our back
                    app_kwargs={"middleware": middleware})
        if demo.share_url:
            allowed.add(demo.share_url)
        warm_up(cfg.model.source)   # after the server is up: the page loads while the engine imports
    except OSError as e:
        raise SystemExit(f"Could not listen on {args.host}:{args.port} ({e}). Is another studio running? "
                         "Choose another port with --port.") from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    signal.signal(signal.SIGTERM, _on_sigterm)
    print(f"Fine-tune Studio is running at {demo.local_url}", flush=True)
    if demo.share_url:
        print(f"Public link: {demo.share_url}", flush=True)
    print(f"Workspace: {home}   (Ctrl+C to quit)", flush=True)
    try:
        demo.block_thread()     # returns (server closed) on Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        pass
    stop_training_before_exit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
