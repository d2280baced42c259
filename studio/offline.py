"""Whether the user told the Hugging Face libraries to stay offline: the one check every Hub access
(model download, dataset load, push) asks before it tries the network. Read at each call, not at
import, so a changed environment is honoured."""

from __future__ import annotations

import os

_ON = ("1", "true", "yes", "on")


def hub_offline(datasets: bool = False) -> bool:
    """``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set; ``datasets``: ``HF_DATASETS_OFFLINE`` counts too."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") + (("HF_DATASETS_OFFLINE",) if datasets else ())
    return any(os.environ.get(k, "").strip().lower() in _ON for k in names)
