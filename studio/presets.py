"""Presets: small commented YAML files, each a partial StudioConfig.

The shipped presets live in ``presets/`` of the install and are read-only; the presets a user saves live
in ``<workspace>/presets``. A shipped name cannot be saved over, and saving over one of the user's own
presets needs ``replace=True`` (the app asks first). A preset is applied over the defaults (or over a
config the user already has), so a file only names what it changes. ``studio presets`` lists them with
their first comment line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import StudioConfig, merge
from .errors import ConfigError
from . import paths
from .config_yaml import parse
from .paths import PRESETS_DIR


@dataclass
class Preset:
    name: str
    summary: str
    path: Path
    shipped: bool = True

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


def list_presets(folder: Path | None = None, user_folder: Path | None = None) -> list[Preset]:
    """The shipped presets (``folder``), then the user's own (``user_folder``, default the workspace's)
    whose names are not shipped ones. With only ``folder`` given, that folder alone."""
    if folder is not None and user_folder is None:
        return [Preset(p.stem, _summary(p), p, shipped=False) for p in sorted(folder.glob("*.yaml"))]
    shipped = [Preset(p.stem, _summary(p), p) for p in sorted((folder or PRESETS_DIR).glob("*.yaml"))]
    names = {p.name for p in shipped}
    user_folder = user_folder or paths.user_presets_dir()
    mine = [Preset(p.stem, _summary(p), p, shipped=False) for p in sorted(user_folder.glob("*.yaml"))
            if p.stem not in names] if user_folder.is_dir() else []
    return shipped + mine


def get_preset(name: str, folder: Path | None = None) -> Preset:
    presets = {p.name: p for p in list_presets(folder)}
    if name not in presets:
        raise ConfigError("There is no preset called '{name}'. Presets: {presets}.", code="config.no_preset", name=name,
                          presets=", ".join(presets) or "none")
    return presets[name]


def load_preset(name: str, base: StudioConfig | None = None, folder: Path | None = None) -> StudioConfig:
    """``base`` (or the defaults) with the preset applied."""
    return merge(base or StudioConfig(), get_preset(name, folder).overrides())


def preset_exists(name: str, user_folder: Path | None = None) -> bool:
    """Whether saving as ``name`` would replace one of the user's own presets."""
    return ((user_folder or paths.user_presets_dir()) / f"{name}.yaml").is_file()


def save_preset(cfg: StudioConfig, name: str, summary: str = "", folder: Path | None = None,
                replace: bool = False) -> Path:
    """Write the current settings as one of the user's presets (model source and data file left out: a
    preset is a recipe), in ``folder`` (default ``<workspace>/presets``). A shipped preset's name is
    refused; an existing preset of the user's is replaced only with ``replace=True``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name or ""):
        raise ConfigError("A preset name may use letters, digits, '-', '_' and '.', and must start with a letter or digit.",
                          code="config.preset_name")
    if (PRESETS_DIR / f"{name}.yaml").is_file():
        raise ConfigError("'{name}' is a preset that comes with the studio; it cannot be replaced.",
                          code="config.preset_shipped", name=name)
    folder = folder or paths.user_presets_dir()
    path = folder / f"{name}.yaml"
    if path.exists() and not replace:
        raise ConfigError("You already have a preset called '{name}' ({path}).", code="config.preset_exists",
                          name=name, path=str(path))
    d = cfg.to_dict()
    d.pop("name", None)
    d["model"].pop("source", None)
    d["data"].pop("file", None)
    head = f"# {summary or 'Saved from the studio.'}\n"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(head + yaml.safe_dump(d, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)
    return path
