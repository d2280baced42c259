"""Push a run's adapter or merged model to the Hugging Face Hub (a private repository by default).

Without a token, or offline, the answer is a plain sentence saying so and what to do; nothing is
uploaded half: the folder is made complete locally first, then handed to ``HfApi.upload_folder``.

huggingface_hub's HTTP client waits forever by default (``timeout=None``): on a network that swallows
traffic the push hung at "Uploading...". So the Hub is first reached with a plain TCP connection
(``CONNECT_S`` seconds), and the push's own requests get timeouts (``READ_S`` without a byte).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..offline import hub_offline
from ..errors import ExportError

CONNECT_S = 5.0      # to reach the Hub at all
READ_S = 60.0        # the longest wait for the next byte of an answer


def _endpoint() -> tuple[str, int]:
    from urllib.parse import urlsplit

    from huggingface_hub import constants
    url = urlsplit(constants.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def check_reachable() -> None:
    """ExportError ``export.unreachable`` within ``CONNECT_S`` seconds when the Hub's address does not answer."""
    import socket
    host, port = _endpoint()
    try:
        socket.create_connection((host, port), timeout=CONNECT_S).close()
    except OSError:
        raise ExportError("The Hugging Face Hub cannot be reached (no internet connection?). Nothing was pushed.",
                          code="export.unreachable") from None


def _bounded_client():
    """huggingface_hub's own client (its request hook), with timeouts instead of none."""
    import httpx2
    from huggingface_hub.utils import _http
    return httpx2.Client(event_hooks={"request": [_http.hf_request_event_hook]}, follow_redirects=True,
                         timeout=httpx2.Timeout(READ_S, connect=CONNECT_S))


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
    from ..models.sources import looks_like_hub_id
    if what not in ("adapter", "merged"):
        raise ExportError("Only the adapter or the merged model can be pushed to the Hub.", code="export.push_kind")
    if not looks_like_hub_id(repo_id):
        raise ExportError("'{repo}' is not a Hub repository name; use the form your-name/model-name.",
                          code="export.bad_repo", repo=repo_id)
    token = _token(token)
    if hub_offline():
        raise ExportError("This computer is set to work offline (HF_HUB_OFFLINE=1), so nothing can be pushed.",
                          code="export.offline")
    check_reachable()
    from huggingface_hub.utils import set_client_factory
    set_client_factory(_bounded_client)
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
    if isinstance(exc, OSError) or any(w in name for w in ("Connect", "Timeout", "Network", "Offline", "Transport")) \
            or "resolve" in text.lower():
        return ExportError("The Hugging Face Hub cannot be reached (no internet connection?). Nothing was pushed.",
                           code="export.unreachable")
    return ExportError("The push to {repo} failed: {detail}.", code="export.push_failed", repo=repo_id,
                       detail=text.splitlines()[0][:200] if text else name)
