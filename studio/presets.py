"""Presets: small commented YAML files in ``presets/``, each a partial StudioConfig.

A preset is applied over the defaults (or over a config the user already has), so a file
only names what it changes. ``studio presets`` lists them with their first comment line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import ConfigError, StudioConfig, merge
from .config_yaml import parse
from .paths import PRESETS_DIR


@dataclass
class Preset:
    name: str
    summary: str
    path: Path

    @property
    def summary_zh(self) -> str:
        return _summary(self.path, "zh")

    def overrides(self) -> dict:
        try:
            data = parse(self.path.read_text(encoding="utf-8"), f"the preset '{self.name}'") or {}
        except yaml.YAMLError as e:   # (parse says a YAML error as a ConfigError; kept for other readers)
            raise ConfigError("Preset '{name}' is not valid YAML: {detail}", code="config.preset_yaml", name=self.name,
                              detail=str(e)) from None
        if not isinstance(data, dict):
            raise ConfigError("Preset '{name}' must be a YAML mapping.", code="config.preset_mapping", name=self.name)
        return data


def _summary(path: Path, lang: str = "en") -> str:
    """The preset's first comment line; in Chinese the line that starts with '# zh:' ('' when there is none)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            continue
        text = line.lstrip("# ").strip()
        if text.startswith("zh:"):
            if lang == "zh":
                return text[3:].strip()
        elif lang != "zh":
            return text
    return ""


def list_presets(folder: Path | None = None) -> list[Preset]:
    folder = folder or PRESETS_DIR
    return [Preset(p.stem, _summary(p), p) for p in sorted(folder.glob("*.yaml"))]


def get_preset(name: str, folder: Path | None = None) -> Preset:
    presets = {p.name: p for p in list_presets(folder)}
    if name not in presets:
        raise ConfigError("There is no preset called '{name}'. Presets: {presets}.", code="config.no_preset", name=name,
                          presets=", ".join(presets) or "none")
    return presets[name]


def load_preset(name: str, base: StudioConfig | None = None, folder: Path | None = None) -> StudioConfig:
    """``base`` (or the defaults) with the preset applied."""
    return merge(base or StudioConfig(), get_preset(name, folder).overrides())


def save_preset(cfg: StudioConfig, name: str, summary: str = "", folder: Path | None = None) -> Path:
    """Write the current settings as a preset (model source and data file left out: a preset is a recipe)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name or ""):
        raise ConfigError("A preset name may use letters, digits, '-', '_' and '.', and must start with a letter or digit.",
                          code="config.preset_name")
    folder = folder or PRESETS_DIR
    d = cfg.to_dict()
    d.pop("name", None)
    d["model"].pop("source", None)
    d["data"].pop("file", None)
    head = f"# {summary or 'Saved from the studio.'}\n"
    path = folder / f"{name}.yaml"
    path.write_text(head + yaml.safe_dump(d, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
