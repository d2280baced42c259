"""Push a run's adapter or merged model to the Hugging Face Hub (a private repository by default).

Without a token, or offline, the answer is a plain sentence saying so and what to do; nothing is
uploaded half: the folder is made complete locally first, then handed to ``HfApi.upload_folder``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..offline import hub_offline
from .files import ExportError


def _token(token: str | None) -> str:
    if token:
        return token
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env
    try:
        from huggingface_hub import get_token
        saved = get_token()
    except Exception:
        saved = None
    if not saved:
        raise ExportError("No Hugging Face token is set, so nothing can be pushed.", code="export.no_token")
    return saved


def push_run(run_dir: str | Path, what: str, repo_id: str, token: str | None = None, private: bool = True,
             progress: Callable[[str], None] = print) -> str:
    """Upload the run's portable adapter folder or its merged model to ``repo_id``; returns its URL."""
    from ..model_sources import looks_like_hub_id
    if what not in ("adapter", "merged"):
        raise ExportError("Only the adapter or the merged model can be pushed to the Hub.", code="export.push_kind")
    if not looks_like_hub_id(repo_id):
        raise ExportError("'{repo}' is not a Hub repository name; use the form your-name/model-name.",
                          code="export.bad_repo", repo=repo_id)
    token = _token(token)
    if hub_offline():
        raise ExportError("This computer is set to work offline (HF_HUB_OFFLINE=1), so nothing can be pushed.",
                          code="export.offline")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / what
        if what == "adapter":
            from .adapter import portable_adapter_folder
            portable_adapter_folder(run_dir, folder)
        else:
            from .merge import export_merged
            export_merged(run_dir, folder, "auto", progress=progress)
        progress(f"Uploading to {repo_id} ({'private' if private else 'public'})...")
        try:
            from huggingface_hub import HfApi
            api = HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                              commit_message=f"Upload {what} of {Path(run_dir).name}")
        except Exception as e:
            raise _push_error(e, repo_id) from None
    return f"https://huggingface.co/{repo_id}"


def _push_error(exc: BaseException, repo_id: str) -> ExportError:
    text = str(exc)
    name = type(exc).__name__   # requests' and huggingface_hub's connection errors have no common base class
    if "401" in text or "403" in text or "Unauthorized" in text or "Forbidden" in text:
        return ExportError("The Hub refused the token for {repo} ({detail}).", code="export.token_refused", repo=repo_id,
                           detail=text.splitlines()[0][:160])
    if "Connection" in name or "Timeout" in name or "resolve" in text.lower() or "Offline" in name:
        return ExportError("The Hugging Face Hub cannot be reached (no internet connection?). Nothing was pushed.",
                           code="export.unreachable")
    return ExportError("The push to {repo} failed: {detail}.", code="export.push_failed", repo=repo_id,
                       detail=text.splitlines()[0][:200] if text else name)
