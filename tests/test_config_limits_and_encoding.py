"""Config files that are not UTF-8 and numbers past any sensible bound get a message naming the file or
setting, from the engine, ``studio train --config`` and ``launch.py --config`` alike (no traceback)."""

import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import main
from studio.config import StudioConfig, merge
from studio.errors import ConfigError
from studio.config_checks import context_warnings

REPO = Path(__file__).resolve().parents[1]


def latin1_config(tmp_path) -> Path:
    f = tmp_path / "réglages.yaml"
    f.write_bytes("name: crème\ntraining:\n  max_steps: 5\n".encode("latin-1"))
    return f


def test_a_config_that_is_not_utf8_is_named_with_its_line(tmp_path):
    f = latin1_config(tmp_path)
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(the first unreadable character is on line 1\)"):
        StudioConfig.load(f)
    f.write_text("name: crème\n", encoding="utf-8-sig")          # a BOM is fine
    assert StudioConfig.load(f).name == "crème"


def test_studio_train_with_a_non_utf8_config_says_so(tmp_path, capsys, studio_home):
    assert main(["train", "--config", str(latin1_config(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and "réglages.yaml" in err and "Traceback" not in err


def test_launch_with_a_non_utf8_config_says_so(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "launch.py"), "--config", str(latin1_config(tmp_path)),
                           "--workspace", str(tmp_path / "ws")], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode != 0
    assert "is not UTF-8 text" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("overrides, words", [
    ({"training": {"max_steps": 10**20}}, "training.max_steps is 1e+20; it must be between 0 and 1,000,000"),
    ({"data": {"max_length": 10**7}}, "data.max_length is 10,000,000; it must be between 16 and 1,048,576"),
    ({"training": {"seed": -1}}, "training.seed is -1"),
    ({"lora": {"r": 100_000}}, "lora.r is 100,000"),
    ({"data": {"encoding": "klingon-8"}}, "data.encoding 'klingon-8' is not a text encoding"),
    # below a field's range as well as above it, with the field's typical values (LIMITS and ``typical``)
    ({"lora": {"dropout": 1.5}}, "lora.dropout is 1.5; it must be between 0 and 0.99 (0.05-0.1 is typical)"),
    ({"data": {"validation": -1}}, "data.validation is -1; it must be at least 0 (0.1 is typical)"),
    ({"training": {"batch_size": 0}}, "training.batch_size is 0; it must be between 1 and 65,536"),
])
def test_values_past_their_bounds_are_refused_by_name(overrides, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        merge(StudioConfig(), overrides).validate()
    merge(StudioConfig(), {"training": {"max_steps": 1_000_000}, "data": {"max_length": 8192}}).validate()


def test_max_length_past_the_context_is_a_warning_not_a_refusal():
    cfg = merge(StudioConfig(), {"data": {"max_length": 10**6}})
    cfg.validate()
    assert "longer than this model reads (8,192 tokens)" in context_warnings(cfg, 8192)[0]
    assert context_warnings(cfg, None) == [] and context_warnings(merge(cfg, {"data": {"max_length": 512}}), 8192) == []
