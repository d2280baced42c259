"""Reading a config's YAML text strictly: what PyYAML lets through silently, a config must not.

    data = parse(text, where="my-run.yaml")     # a dict, None for an empty text; ConfigError otherwise

- A key given twice in one mapping (``lora.r: 8`` then ``r: 64``, or a second ``training:`` section) is
  refused naming both lines: PyYAML keeps the last one, so the earlier settings would vanish.
  Keys brought in by a merge key (``<<: *defaults``) may be overridden: that is what merge keys are for.
- Nesting deeper than ``MAX_DEPTH`` and an alias inside its own anchor (``a: &x [*x]``) are refused as
  a bad file, not met as Python's RecursionError deep inside the studio.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent

from .errors import ConfigError

# A config is three levels deep (section, setting, a list of module names); 20 is far past any real one.
MAX_DEPTH = 20
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str, where: str):
        super().__init__(stream)
        self._where = where
        self._depth = 0
        self._open: set[str] = set()      # anchors whose node is still being read

    def compose_node(self, parent, index):
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, AliasEvent):
            if event.anchor in self._open:
                raise ConfigError("In {where}, the alias *{anchor} on line {line} is inside the &{anchor} it "
                                  "names: the value refers to itself and would never end.", code="config.yaml_recursive",
                                  where=self._where, anchor=event.anchor, line=line)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise ConfigError("In {where}, the values are nested more than {depth} levels deep (at line {line}); a "
                              "config has sections, settings and at most a list of names.", code="config.yaml_too_deep",
                              where=self._where, depth=MAX_DEPTH, line=line)
        anchor = event.anchor
        if anchor:
            self._open.add(anchor)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError("'{key}' is given twice in {where} (lines {first} and {second}); only one value "
                                      "can be used, so the studio will not guess which.", code="config.duplicate_key",
                                      key=key, where=self._where, first=seen[key], second=line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse(text: str, where: str = "the config") -> Any:
    """The YAML value of ``text`` (None when it holds nothing), read strictly (see the module's notes)."""
    loader = _StrictLoader(text, where)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError("The config is not valid YAML: {detail}", code="config.not_yaml", detail=str(e)) from None
    except RecursionError:
        raise ConfigError("In {where}, the values are nested more than {depth} levels deep (at line {line}); a "
                          "config has sections, settings and at most a list of names.", code="config.yaml_too_deep",
                          where=where, depth=MAX_DEPTH, line="?") from None
    finally:
        loader.dispose()
