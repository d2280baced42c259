"""Which part of the studio may import which: the layering, checked by reading every module's imports.

Every ``import``/``from ... import`` anywhere in a module counts (the engine imports heavy libraries
inside functions, so an import in a function body crosses a layer just as much as one at the top).
``ALLOWED`` is the table docs/ARCHITECTURE.md draws; a new module or package needs a row here.
Inside the app one more rule holds (``UI_DOOR``): ``studio/ui/services.py`` is the app's one window onto
the engine; the tabs, views, bindings and the rest of ``studio/ui`` import only the app's own modules and
the foundation they share with the engine (``UI_FOUNDATION``).
And there are no circles: no two modules import each other, directly or round a loop (``import_graph``,
function bodies included), and no unit of the table may import one that may import it back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import studio

PACKAGE = Path(studio.__file__).resolve().parent

# Bottom of the table first. A unit is a top-level module (studio.jobs) or a package (studio.data).
FOUNDATION = {"studio.config", "studio.config_fields", "studio.config_methods", "studio.config_checks",
              "studio.config_yaml", "studio.paths", "studio.offline", "studio.errors", "studio.catalogue",
              "studio.process_env"}
ALLOWED: dict[str, set[str]] = {
    "studio": set(),
    "studio.paths": {"studio.errors"},             # a workspace that is a file is said as a StudioError
    "studio.offline": set(),
    "studio.errors": {"studio.catalogue"},          # an error says itself in a language from the catalogue's words
    "studio.catalogue": set(),
    "studio.process_env": set(),
    "studio.config": {"studio.errors", "studio.config_checks", "studio.config_yaml",  # validate(), load()
                      "studio.config_fields", "studio.config_methods"},           # its fields, its method sections
    "studio.config_fields": set(),
    "studio.config_methods": {"studio.config_fields", "studio.errors"},
    "studio.config_yaml": {"studio.errors"},
    "studio.config_checks": {"studio.errors"},      # it reads the fields of the config it is given
    "studio.presets": FOUNDATION,
    "studio.device": FOUNDATION,
    "studio.out_of_memory": set(),
    "studio.runs": FOUNDATION,
    "studio.data": FOUNDATION,
    # the model package: sources, loading, LoRA, sizes and the estimate, weight checks; nothing above it
    "studio.models": FOUNDATION,
    "studio.fit": FOUNDATION | {"studio.models"},
    # (training reads the device lock's holder: is a run still owned by a live process? see resume.live_owner;
    # the estimate of a run on several GPUs says what 'Fit to my GPU' would change: distributed.estimate_for;
    # GRPO's rewards score answers with the scored evaluation's facts: training/rewards.py)
    "studio.training": FOUNDATION | {"studio.models", "studio.data", "studio.runs", "studio.device",
                                     "studio.out_of_memory", "studio.fit", "studio.scoring"},
    "studio.inference": FOUNDATION | {"studio.models", "studio.data", "studio.runs", "studio.device",
                                      "studio.out_of_memory"},
    # (export reads the run's recorded system prompt and its template's end markers for the Modelfile)
    "studio.export": FOUNDATION | {"studio.models", "studio.runs", "studio.data"},
    "studio.scoring": set(),                          # text against text: no model, no files
    "studio.base_answers": FOUNDATION,
    # the exported file asked in llama.cpp beside the trained model's own answers
    "studio.export_check": FOUNDATION | {"studio.device", "studio.runs", "studio.data", "studio.scoring",
                                         "studio.evaluation", "studio.export"},
    "studio.jobs": FOUNDATION | {"studio.device", "studio.runs", "studio.training", "studio.evaluation"},
    # chat with an exported GGUF in llama.cpp: the adapter's base from its Modelfile, the run's settings
    "studio.gguf_chat": FOUNDATION | {"studio.export", "studio.data", "studio.runs", "studio.inference"},
    "studio.evaluation": FOUNDATION | {"studio.device", "studio.runs", "studio.inference", "studio.scoring",
                                       "studio.base_answers", "studio.data", "studio.judge"},
    # the evaluation's optional judge: a chat model loaded as chat loads one (a run folder: its adapter too)
    "studio.judge": FOUNDATION | {"studio.device", "studio.runs", "studio.inference", "studio.models"},
}
ENGINE = set(ALLOWED)
ALLOWED["studio.commands"] = ENGINE - {"studio"}
ALLOWED["studio.cli"] = {"studio.commands", "studio.paths", "studio.errors"}   # (commands load with importlib)
ALLOWED["studio.ui"] = ENGINE                     # the UI uses the engine; nothing below imports the UI

# The app's sub-table: every module of studio/ui but the door itself.
UI_DOOR = "studio.ui.services"
UI_FOUNDATION = {"studio.config", "studio.errors", "studio.paths"}   # settings, errors, where files are

PACKAGES = {"studio.data", "studio.models", "studio.training", "studio.export", "studio.commands", "studio.ui",
            "studio.runs", "studio.catalogue"}


def unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return module
    return ".".join(parts[:2])


def module_name(path: Path) -> tuple[str, str]:
    """(module, the package its relative imports start from) for a file under studio/."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if rel[-1] == "__init__":
        return ".".join(rel[:-1]), ".".join(rel[:-1])
    return ".".join(rel), ".".join(rel[:-1])


def studio_imports(source: str, package: str) -> set[str]:
    """The studio modules a source imports (relative imports resolved against ``package``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                if node.module:
                    out.add(f"{prefix}.{node.module}")
                else:       # from . import models: each name may be a module
                    out |= {f"{prefix}.{a.name}" for a in node.names}
            elif node.module:
                out.add(node.module)
                if node.module == "studio":        # from studio import paths
                    out |= {f"studio.{a.name}" for a in node.names}
    return {m for m in out if m == "studio" or m.startswith("studio.")}


def violations(module: str, package: str, source: str) -> list[str]:
    mine = unit(module)
    allowed = ALLOWED.get(mine)
    if allowed is None:
        return [f"{module}: not in the table of import directions (add a row to ALLOWED)"]
    bad = []
    for target in sorted(studio_imports(source, package)):
        if target == "studio":
            continue        # the package itself (its __init__ imports nothing); `from studio import paths` counts as studio.paths
        other = unit(target)
        if other != mine and other not in allowed:
            bad.append(f"{module} imports {target}")
        elif mine == "studio.ui" and module != UI_DOOR and other != mine and other not in UI_FOUNDATION:
            bad.append(f"{module} imports {target} (the app reaches the engine through {UI_DOOR})")
    return bad


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_imports_only_in_the_allowed_directions():
    bad = []
    for path in modules():
        module, package = module_name(path)
        bad += violations(module, package, path.read_text(encoding="utf-8"))
    assert bad == [], "\n".join(bad)


def test_the_table_names_every_unit_that_exists():
    units = {unit(module_name(p)[0]) for p in modules()}
    assert units <= set(ALLOWED), units - set(ALLOWED)
    assert PACKAGES <= units


# ---- no circles: between modules, and between the table's units ----------------------------------

def import_graph() -> dict[str, set[str]]:
    """Each module of studio/ and the studio modules it imports (function bodies included). A name that is
    not a module of its own (``from . import load_model``) is the package's, and counts as that package."""
    found = {module_name(p)[0]: p for p in modules()}
    graph: dict[str, set[str]] = {}
    for module, path in found.items():
        package = module_name(path)[1]
        targets = set()
        for target in studio_imports(path.read_text(encoding="utf-8"), package):
            while target not in found and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle for each import that leads back to a module on the way there (``[a, b, a]``), none for a
    graph without circles."""
    out, done, path = [], set(), []

    def visit(node: str) -> None:
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                out.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return out


def test_no_two_modules_import_each_other_directly_or_round_a_loop():
    found = cycles(import_graph())
    assert found == [], "\n".join(" -> ".join(c) for c in found)


def test_the_table_itself_has_no_circle():
    """No unit may import one that may import it back: the table is layers, a lower one never importing a higher."""
    table = {u: {v for v in allowed if v != u} for u, allowed in ALLOWED.items()}
    assert cycles(table) == []


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c", "a"]]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, []),
])
def test_a_circle_is_found(graph, expected):
    assert cycles(graph) == expected


def test_an_import_inside_a_function_is_in_the_graph():
    # config.py imports config_checks only inside StudioConfig.validate()
    assert "studio.config_checks" in import_graph()["studio.config"]


@pytest.mark.parametrize("module, package, source, expected", [
    ("studio.inference", "studio", "from .jobs import get_manager", "studio.inference imports studio.jobs"),
    ("studio.inference", "studio", "def f():\n    from .training.failures import explain",
     "studio.inference imports studio.training.failures"),
    ("studio.data.read", "studio.data", "from ..training import job", "studio.data.read imports studio.training"),
    ("studio.data.read", "studio.data", "from .. import models", "studio.data.read imports studio.models"),
    ("studio.jobs", "studio", "from studio.ui import app", "studio.jobs imports studio.ui"),
    ("studio.runs.folder", "studio.runs", "from studio import jobs", "studio.runs.folder imports studio.jobs"),
    ("studio.models.size", "studio.models", "def f():\n    from ..training.methods import sft",
     "studio.models.size imports studio.training.methods"),
    ("studio.config_checks", "studio", "from .config import LIMITS", "studio.config_checks imports studio.config"),
    ("studio.catalogue", "studio.catalogue", "from ..errors import fill", "studio.catalogue imports studio.errors"),
    # the app's sub-table: a tab, the views or the bindings reaching past the services
    ("studio.ui.tab_settings", "studio.ui", "def f():\n    from studio.fit import fit_to_gpu",
     "studio.ui.tab_settings imports studio.fit (the app reaches the engine through studio.ui.services)"),
    ("studio.ui.views", "studio.ui", "from ..training.distributed import requested_gpus",
     "studio.ui.views imports studio.training.distributed (the app reaches the engine through studio.ui.services)"),
    ("studio.ui.bindings", "studio.ui", "from studio.data.read import EXTENSIONS",
     "studio.ui.bindings imports studio.data.read (the app reaches the engine through studio.ui.services)"),
    ("studio.ui.app", "studio.ui", "from studio import presets",
     "studio.ui.app imports studio.presets (the app reaches the engine through studio.ui.services)"),
])
def test_a_wrong_direction_is_caught(module, package, source, expected):
    assert violations(module, package, source) == [expected]


def test_the_right_directions_pass():
    assert violations("studio.training.job", "studio.training", "from ..runs import RunFolder\n"
                      "from .callbacks import Progress\nfrom ..data.pipeline import prepare") == []
    assert violations("studio.ui.services", "studio.ui", "from studio.jobs import get_manager") == []
    assert violations("studio.ui.views", "studio.ui", "from .services import Services\nfrom . import plots\n"
                      "from studio.config import merge\nfrom ..errors import StudioError\n"
                      "from studio import paths") == []
