"""The base model's answers, remembered: the untuned model asked the same question the same way gives the
same greedy answer, so an evaluation after every run (on a CPU, most of its time) asks it only once.

    cache = BaseAnswers(chat)           # a ChatSession: its base model, system prompt, template, settings
    cache.get(prompt) or cache.put(prompt, chat.reply(None, prompt, use_adapter=False))

Kept in ``<model cache>/base_answers/<key>.json``, one file per way of asking; the key covers the base
model's folder and the size and time of its weight files, the system prompt, the chat template and the
generation settings. Sampled answers (temperature above 0) are never remembered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from . import paths


class BaseAnswers:
    def __init__(self, chat: Any):
        self.enabled = chat.generation.temperature == 0
        self.path = paths.cache_dir() / "base_answers" / f"{_key(chat)}.json" if self.enabled else None
        self._answers: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._answers is None:
            try:
                self._answers = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError, AttributeError):
                self._answers = {}
        return self._answers

    def get(self, prompt: str) -> str | None:
        return self._load().get(prompt) if self.enabled else None

    def put(self, prompt: str, answer: str) -> str:
        if not self.enabled:
            return answer
        self._load()[prompt] = answer
        try:       # a side file renamed into place: readers never see half a file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{id(self)}.partial")
            tmp.write_text(json.dumps(self._answers, ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass          # a cache that cannot be written only costs time
        return answer


def _key(chat: Any) -> str:
    base = getattr(chat.model, "get_base_model", lambda: chat.model)()
    folder = str(getattr(getattr(base, "config", None), "_name_or_path", "") or "")
    weights = []
    if folder and Path(folder).is_dir():
        weights = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime))
                         for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    quant = str(getattr(getattr(base, "config", None), "quantization_config", None) or "")
    dtype = str(getattr(base, "dtype", ""))
    what = [folder, weights, quant, dtype, chat.system_prompt, chat.chat_template,
            sorted(dataclasses.asdict(chat.generation).items())]
    return hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()[:24]
