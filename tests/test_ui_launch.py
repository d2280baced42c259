"""launch.py: refuses to expose the studio without a login, reads logins, puts Gradio's temp dir in the workspace."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import launch  # noqa: E402


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_network_host_without_auth_is_refused(host):
    with pytest.raises(SystemExit, match="--auth"):
        launch.check_exposure(host, share=False, auth=None)


def test_share_without_auth_is_refused_even_on_loopback():
    with pytest.raises(SystemExit, match="public link"):
        launch.check_exposure("127.0.0.1", share=True, auth=None)


def test_loopback_needs_no_auth_and_auth_opens_the_network():
    launch.check_exposure("127.0.0.1", share=False, auth=None)
    launch.check_exposure("localhost", share=False, auth=None)
    launch.check_exposure("0.0.0.0", share=True, auth=[("a", "b")])


def test_auth_from_argument_and_file(tmp_path):
    assert launch.parse_auth("alice:se:cret") == [("alice", "se:cret")]
    f = tmp_path / "users.txt"
    f.write_text("# team\nalice:one\n\nbob:two\n", encoding="utf-8")
    assert launch.parse_auth(str(f)) == [("alice", "one"), ("bob", "two")]
    f.write_text("alice\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="user:password"):
        launch.parse_auth(str(f))
    with pytest.raises(SystemExit, match="USER:PASS"):
        launch.parse_auth("no-colon-and-no-file")


def test_workspace_sets_studio_home_and_gradio_temp(tmp_path, monkeypatch):
    # setenv first, so monkeypatch restores whatever set_workspace writes into os.environ
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "before"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "before-tmp"))
    home = launch.set_workspace(str(tmp_path / "ws"))
    assert home == (tmp_path / "ws").resolve()
    assert os.environ["STUDIO_HOME"] == str(home)
    assert Path(os.environ["GRADIO_TEMP_DIR"]).parent == home and Path(os.environ["GRADIO_TEMP_DIR"]).is_dir()


def test_initial_config_from_flags(tmp_path):
    args = launch.build_parser().parse_args(["--model", "/m", "--data", "x.jsonl", "--preset", "qlora-paper"])
    cfg, preset = launch.initial_config(args)
    assert (cfg.model.source, cfg.data.file, cfg.model.quantization, preset) == ("/m", "x.jsonl", "4bit-nf4",
                                                                                 "qlora-paper")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("training: {max_steps: 7}\n", encoding="utf-8")
    cfg, preset = launch.initial_config(launch.build_parser().parse_args(["--config", str(cfg_file)]))
    assert cfg.training.max_steps == 7 and preset is None


def test_refusal_message_reaches_the_terminal_before_anything_starts():
    proc = subprocess.run([sys.executable, str(REPO / "launch.py"), "--host", "0.0.0.0"], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert proc.returncode != 0
    assert "without --auth" in proc.stderr and "Traceback" not in proc.stderr


def test_one_sigterm_delivered_twice_is_one_stop(monkeypatch):
    """`timeout` relays its SIGTERM to the app and to its process group: the second copy must not count as
    the "again" that quits without saving the training run."""
    import signal as sig

    monkeypatch.setattr(launch, "_last_stop", [])
    with pytest.raises(launch._Terminated):
        launch._on_sigterm(sig.SIGTERM, None)
    launch._on_sigterm(sig.SIGTERM, None)          # the relayed copy: nothing
    launch._last_stop[-1] -= 2.0                   # a real second stop, later
    with pytest.raises(launch._Terminated):
        launch._on_sigterm(sig.SIGTERM, None)


@pytest.mark.parametrize("source, converted", [("default", ["default"]), (" Default ", ["default"]),
                                               ("/models/mine", []), ("", [])])
def test_the_warm_up_converts_the_built_in_model_only_when_the_first_screen_uses_it(monkeypatch, source, converted):
    import importlib

    from studio.models import sources
    # The warm-up imports these; imported first under the patch, they would keep the fake resolve_source
    # (``from .sources import resolve_source``) for every later test.
    for name in ("studio.models.load", "studio.jobs", "studio.data.pipeline", "studio.inference"):
        importlib.import_module(name)
    asked: list[str] = []
    monkeypatch.setattr(sources, "resolve_source", lambda s, *a, **k: asked.append(s))
    launch.warm_up(source).join(120)
    assert asked == converted
