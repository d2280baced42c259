"""One error family: every engine error has a code, a hint and a Chinese message, and the interfaces
show them in the user's language."""

import ast
import re
import string
import warnings
from pathlib import Path

import pytest

from studio import errors
from studio.catalogue import MESSAGES
from studio.errors import ConfigError, DataError, StudioError, TrainingFailed

STUDIO = Path(__file__).resolve().parents[1] / "studio"
FAMILY = {name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, StudioError)}
FAMILY |= {"RenderError"}          # studio/data/render.py: a DataError for one row
FAMILY_CODES = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, StudioError)}


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def _constructions() -> list[tuple[str, int, str | None, set[str], str | None]]:
    """(file, line, code, keyword names, English template) of every StudioError built in studio/."""
    out = []
    for path in sorted(STUDIO.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in FAMILY:
                continue
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            c = kw.get("code")      # a literal, or `"a" if ... else "b"`
            codes = [c.value] if isinstance(c, ast.Constant) else \
                [c.body.value, c.orelse.value] if isinstance(c, ast.IfExp) and all(
                    isinstance(x, ast.Constant) for x in (c.body, c.orelse)) else [None]
            template = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            for code in codes:
                out.append((str(path.relative_to(STUDIO.parent)), node.lineno, code, set(kw) - {"code"}, template))
    return out


SITES = _constructions()


def test_the_scan_finds_the_engine_errors():
    assert len(SITES) > 150 and len({s[2] for s in SITES}) > 120


def test_every_error_the_studio_raises_has_a_code_a_hint_and_chinese():
    problems = []
    for file, line, code, params, template in SITES:
        where = f"{file}:{line}"
        if code is None:
            problems.append(f"{where}: no code='...' (a literal)")
            continue
        if template is None:
            problems.append(f"{where}: the English message is not a literal template")
        elif not _fields(template) <= params:
            problems.append(f"{where}: the message uses {_fields(template) - params} that are not given")
        entry = MESSAGES.get(code)
        if entry is None:
            problems.append(f"{where}: {code} is not in studio/catalogue")
            continue
        zh, hint, zh_hint = entry
        if not (zh and hint and zh_hint):
            problems.append(f"{where}: {code} lacks a Chinese message, a hint or a Chinese hint")
        if re.search(r"[\u4e00-\u9fff]", hint) or not re.search(r"[\u4e00-\u9fff]", zh + zh_hint):
            problems.append(f"{where}: {code}: the hint must be English and the translations Chinese")
        for text in entry:
            if not _fields(text) <= params:
                problems.append(f"{where}: {code}'s catalogue text uses {_fields(text) - params}, not given there")
    assert not problems, "\n".join(problems)


def test_the_catalogue_has_no_entry_nothing_raises():
    used = {s[2] for s in SITES} | FAMILY_CODES
    assert set(MESSAGES) - used == set()


def test_engine_messages_name_settings_not_widgets():
    """'Tick the box' means nothing on the command line; ``model.trust_remote_code`` means the same everywhere."""
    for file, line, code, _, template in SITES:
        text = " ".join([template or "", *MESSAGES.get(code, ("", "", ""))[1:2]]).lower()
        assert not re.search(r"\b(tick|untick|click|button|checkbox|the box)\b", text), f"{file}:{line}"


def test_no_error_is_matched_by_its_class_name():
    names = "|".join(sorted(FAMILY))
    pattern = re.compile(rf"__name__\s*(==|in)\s*.*\b({names})\b")
    found = [f"{p}:{n}" for p in STUDIO.rglob("*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
             if pattern.search(line)]
    assert not found


def test_errors_are_imported_from_studio_errors_only():
    """One home for each error class: it is imported from studio/errors.py, never through another module that
    imports it too (nine did, "as before the error family")."""
    names = {n for n, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, StudioError)}
    root = STUDIO.parent
    files = [*STUDIO.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "benchmarks").rglob("*.py"),
             *(root / "scripts").rglob("*.py"), root / "launch.py"]
    found = []
    for path in sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").rpartition(".")[2] != "errors":
                found += [f"{path.relative_to(root)}:{node.lineno} imports {a.name} from {node.module}"
                          for a in node.names if a.name in names]
    assert not found, "\n".join(found)
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)   # callers that caught ValueError still do


def test_render_in_both_languages_and_the_english_fallback():
    e = ConfigError("{key} is {value}; it must be between {low} and {high}.", code="config.out_of_range",
                    key="lora.r", value="0", low="1", high="4,096")
    assert e.message == "lora.r is 0; it must be between 1 and 4,096."
    assert e.render("zh") == ("lora.r 为 0；它必须在 1 到 4,096 之间。", "修改这项设置后重新开始。")
    assert str(e) == f"{e.message} {e.hint}"
    odd = DataError("Something new.", code="data.not_in_the_catalogue_yet")
    assert odd.render("zh")[0] == "Something new." and odd.render("zh")[1]     # English, and the family's hint
    nested = TrainingFailed("There is a problem with the training data: {cause}", code="training.data",
                            cause=DataError("{name} is empty.", code="data.empty_file", name="x.jsonl"))
    assert nested.message == "There is a problem with the training data: x.jsonl is empty."
    assert nested.render("zh")[0] == "训练数据有问题：x.jsonl 是空文件。"


def test_the_cli_prints_message_and_hint_in_chinese(tmp_path, studio_home, capsys, monkeypatch):
    from studio.cli import main
    monkeypatch.setenv("STUDIO_LANG", "zh")
    assert main(["train", "--preset", "no-such-preset"]) == 2
    err = capsys.readouterr().err
    assert "error: 没有名为 'no-such-preset' 的预设" in err and "hint: 从列出的预设中选择一个。" in err


def test_an_internal_error_in_the_cli_names_its_log(studio_home, capsys, monkeypatch):
    from studio import cli
    from studio.commands import presets

    def broken(args):
        raise KeyError("oops")
    monkeypatch.setattr(presets, "run", broken)
    assert cli.main(["presets"]) == 1
    err = capsys.readouterr().err
    log = studio_home / "logs" / "cli-errors.log"
    assert "internal error: KeyError" in err and str(log) in err and "Traceback" not in err
    assert "KeyError: 'oops'" in log.read_text()


@pytest.fixture(scope="module")
def app():
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services
    demo = build_app(AppOptions(config=StudioConfig()), services=Services())
    return demo, {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


def _toast(fn, *args) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(*args)
    return " ".join(str(w.message) for w in caught)


def test_the_chinese_app_shows_a_bad_data_file_in_chinese(app, tmp_path):
    demo, fns = app
    bind = demo.studio_ctx.bind
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    values = [w.value for w in bind.inputs]
    kind = bind.inputs.index(bind.widgets["data.file"][0])
    values[kind], values[kind + 1] = "file", str(tmp_path / "empty.jsonl")
    zh = _toast(fns["check_data"], "zh", *values)
    assert "empty.jsonl 是空文件。" in zh and "请选择包含训练样本的文件。" in zh and "is empty" not in zh
    assert "empty.jsonl is empty." in _toast(fns["check_data"], "en", *values)


def test_the_chinese_app_labels_the_settings_an_error_names(app):
    from studio.ui.common import user_message
    e = ConfigError("{key} is {value}; it must be between {low} and {high} ({typical} is typical).",
                    code="config.out_of_range_typical", key="lora.r", value="0", low="1", high="4,096", typical="8-64")
    assert user_message(e, "zh").startswith("LoRA 秩 r (lora.r) 为 0")
    assert user_message(e, "en").startswith("LoRA rank r (lora.r) is 0")


def test_a_run_that_fails_on_its_data_reports_in_chinese(tmp_path):
    from studio.training import TrainingJob
    from studio.ui import views
    from test_training_job import make_cfg
    from tiny import tiny_model, tiny_tokenizer

    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    tok = tiny_tokenizer()
    job = TrainingJob(make_cfg(tmp_path / "empty.jsonl", max_steps=2), tmp_path / "run", model=tiny_model(tok),
                      tokenizer=tok)
    job.start()
    assert job.join(60) and job.state == "failed"
    assert job.message == "There is a problem with the training data: empty.jsonl is empty."
    shown = views.job_status(job.status(), "zh")
    assert "训练数据有问题：empty.jsonl 是空文件。" in shown and "修正数据文件（或换一个）后重新开始。" in shown


def test_an_internal_error_in_the_app_is_called_one_and_names_its_log(studio_home):
    from studio.ui.common import errors_log_path, user_message
    text = user_message(KeyError("oops"), "en")
    assert "Internal error" in text and str(errors_log_path()) in text
    assert "KeyError: 'oops'" in errors_log_path().read_text()
