import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# No test may reach a model hub: fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from tiny import tiny_model_dir
    return tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture()
def studio_home(tmp_path, monkeypatch):
    """A private workspace for one test (runs, uploads), sharing the model cache."""
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
