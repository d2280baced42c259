"""Text the tabs show, rendered from engine dicts: Markdown cards, tables, the progress bar.

Pure functions (engine data + language in, Markdown/HTML/pandas out), so the words stay in
``i18n`` and the layout code stays free of formatting.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from studio.errors import StudioError

from .bindings import command_for
from .i18n import TEXT, label_settings, t
from .services import Services

# Symbols every system font has (emoji fonts are often missing on Linux servers).
STATE_ICONS = {"pending": "…", "loading": "…", "training": "▶", "saving": "●", "done": "✓",
               "stopped": "■", "failed": "✗", "interrupted": "⚠"}


def _num(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "–"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _duration(s: Any) -> str:
    if not isinstance(s, (int, float)):
        return "–"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _loss(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "–"


# ---- Model tab ------------------------------------------------------------------------------
def device(info: dict, lang: str) -> str:
    if info.get("device") == "cuda":
        line = t("model.device_gpu", lang, name=info.get("name", "GPU"), free=info.get("free_gb", 0),
                 total=info.get("total_gb", 0))
        if not info.get("bf16"):
            line += "  \n" + t("model.no_bf16", lang)
        return f"**{t('model.device', lang)}**  \n{line}"
    return (f"**{t('model.device', lang)}**  \n" +
            t("model.device_cpu", lang, name=info.get("name", "CPU"), free=info.get("free_gb", 0)))


def gpus_found(gpus: list[dict], lang: str) -> str:
    """'GPUs found: 2 × NVIDIA H100 (80 GB)' or each one when they differ."""
    if not gpus:
        return t("gpus.none", lang)
    kinds = sorted({(g["name"], g["total_gb"]) for g in gpus})
    text = (f"{len(gpus)} × {kinds[0][0]} ({kinds[0][1]:.0f} GB)" if len(kinds) == 1 else
            ", ".join(f"{g['index']}: {g['name']} ({g['total_gb']:.0f} GB)" for g in gpus))
    return t("gpus.found", lang, gpus=text)


def global_batch(cfg: Any, gpus_found: int, lang: str) -> str:
    t_ = cfg.training
    n = Services.requested_gpus(cfg, gpus_found) * max(1, t_.nnodes)   # several machines: as many GPUs each
    return t("gpus.global_batch", lang, batch=t_.batch_size, accum=t_.grad_accum, gpus=n,
             total=Services.global_batch(cfg, n))


def model_summary(s: dict, lang: str) -> str:
    template = t("model.template_own", lang) if s.get("has_chat_template") else t("model.template_fallback", lang)
    mods = ", ".join(f"`{m}`" for m in s.get("linear_names") or []) or "–"
    rows = [
        (t("model.architecture", lang), s.get("architecture", "–")),
        (t("model.params", lang), _num(s.get("params"))),
        (t("model.context", lang), s.get("context_length") or "–"),
        (t("field.data.template", lang), template),
        (t("model.linear", lang), mods),
        (t("model.loaded_as", lang), f"{s.get('dtype', '')} · {s.get('quantization', '')} · {s.get('device', '')}"),
    ]
    return f"**{t('model.summary', lang)}** · `{s.get('source', '')}`\n\n" + "\n".join(
        f"- {k}: {v}" for k, v in rows)


def memory(est: dict | None, lang: str) -> str:
    if not est:
        return ""
    parts = est.get("parts", {})
    detail = " · ".join(f"{t('mem.' + k, lang)} {v:.2f}" for k, v in parts.items())
    need, free = est.get("total_gb", 0), est.get("free_gb", 0)
    if est.get("fits"):
        verdict = t("mem.fits", lang, spare=free - need)
    elif est.get("advice"):
        verdict = t("mem.too_big_fit", lang, changes=", ".join(est["advice"]))
    else:
        verdict = t("mem.too_big", lang)
    gpu_need = est.get("gpu_total_gb", need)
    cards = " · ".join(f"{gb} GB " + (t("mem.card_fits", lang, spare=gb - gpu_need) if gpu_need <= gb * 0.95 else "✗")
                       for gb in (24, 48, 80))
    gpus = est.get("gpus", 1)
    title = t("mem.per_gpu", lang, gpus=gpus, strategy=str(est.get("strategy", "")).upper()) if gpus > 1 else \
        t("mem.title", lang)
    # On a computer without a GPU the verdicts for 24/48/80 GB cards answer a question nobody asked here.
    cards_line = "" if est.get("device") == "cpu" else f"{t('mem.cards', lang, need=gpu_need)}: {cards}  \n"
    return (f"**{title}**  \n" +
            t("mem.line", lang, need=need, free=est.get("free_gb", 0)) +
            f" — {verdict}  \n{cards_line}<small>{detail} GB</small>" +
            (f"  \n<small>{t('mem.whole_at_load', lang, gb=est['whole_model_at_load_gb'])}</small>"
             if est.get("whole_model_at_load_gb") else "") +
            # offload moves the layer inputs off the GPU, not out of the computer: say what RAM they take
            (f"  \n{t('mem.offload', lang, gb=est['cpu_offload_gb'])}" if est.get("cpu_offload_gb") else "") +
            (f" ✗ {t('mem.offload_ram_short', lang, free=est['ram_free_gb'])}" if est.get("ram_short") else ""))


# ---- Data tab -------------------------------------------------------------------------------
def data_summary(report: Any, data_cfg: Any, lang: str) -> str:
    used = min(report.rows, data_cfg.max_rows) if data_cfg.max_rows else report.rows
    n_val = Services.validation_count(used, data_cfg.validation)
    head = t("data.summary", lang, rows=report.rows, total=report.total, fmt=report.format,
             template=report.template or "–")
    split = t("data.split", lang, used=used, train=used - n_val, val=n_val)
    lines = [f"**{head}**", split]
    if report.format in ("unknown",) or report.rows == 0:
        lines.append("⚠ " + (report.message or t("data.no_rows", lang)))
    if report.problems:
        lines.append(t("data.problem_count", lang, n=len(report.problems)))
    stats = report.token_stats or {}
    if stats.get("count"):
        lines.append(t("data.tokens", lang, median=stats.get("median"), p95=stats.get("p95"), max=stats.get("max"),
                       over=stats.get("over_max", 0), limit=data_cfg.max_length))
    cut, left = getattr(report, "cut", 0), getattr(report, "left_out_long", 0)
    if cut or left:
        why = t("data.long_why_drop" if data_cfg.overlong == "drop" else "data.long_why_cut", lang)
        lines.append(t("data.long_rows", lang, limit=data_cfg.max_length, cut=cut, left=left, why=why))
    if getattr(report, "encoding", "") and getattr(report, "encoding_sample", ""):
        lines.append(t("data.encoding", lang, encoding=html.escape(Services.encoding_label(report.encoding)),
                       sample=html.escape(report.encoding_sample[:80])))
    prompt = getattr(report, "system_prompt", None)
    if prompt and report.rows:
        lines.append(t("data.system_prompt", lang, text=html.escape(Services.describe_system_prompt(prompt))))
    lines += [f"<small>{html.escape(n)}</small>" for n in getattr(report, "notes", [])]
    return "  \n".join(lines)


def problems_frame(problems: Sequence[Any], lang: str) -> pd.DataFrame:
    return pd.DataFrame([(p.row, p.message) for p in problems],
                        columns=[t("data.col_row", lang), t("data.col_problem", lang)])


def _cell(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 400 else s[:400] + " …"


def rows_page(records: list[dict], page: int, size: int, lang: str) -> tuple[pd.DataFrame, int, str]:
    """One page of raw rows as a table, the page actually shown, and 'page p of n'."""
    pages = max(1, -(-len(records) // size))
    page = max(1, min(int(page or 1), pages))
    chunk = records[(page - 1) * size: page * size]
    cols: list[str] = []
    for r in chunk:
        cols += [k for k in r if k != "__row__" and k not in cols]
    frame = pd.DataFrame([[r.get("__row__", "")] + [_cell(r.get(c, "")) for c in cols] for r in chunk],
                         columns=[t("data.col_row", lang)] + cols)
    return frame, page, t("data.page_of", lang, page=page, pages=pages, rows=len(records))


def example_info(ex: dict, lang: str) -> str:
    return t("data.example_of", lang, n=ex["index"] + 1, shown=ex["shown"], rows=ex["rows"])


# ---- Settings -------------------------------------------------------------------------------
def preset_summary(name: str | None, lang: str) -> str:
    if not name:
        return t("settings.no_preset", lang)
    for p in Services.presets():
        if p.name == name:
            return f"*{html.escape(p.summary_zh if lang == 'zh' and p.summary_zh else p.summary)}*"
    return ""


def method_note(method: str, lang: str) -> str:
    """What the training method learns from and what data it needs, in words (the Settings tab)."""
    return t(f"method.note.{method}", lang) if f"method.note.{method}" in TEXT else ""


def _comment(text: str) -> str:
    """Shell comment lines short enough for the code box (a CJK character is two columns wide)."""
    import textwrap
    width = 50 if any("\u3000" <= ch <= "\u9fff" for ch in text) else 100
    return "\n".join("# " + line for line in textwrap.wrap(text, width))


def machine_commands(commands: list[str] | None, lang: str) -> str:
    """The commands of the other machines of a run of several (Settings tab), each after a comment line."""
    if commands is None:
        return _comment(t('settings.machines_bad', lang))
    if not commands:
        return _comment(t('settings.machines_one', lang))
    lines = []
    for i, command in enumerate(commands, start=1):
        lines += [_comment(t('settings.machines_run', lang, machine=i + 1, rank=i)), command]
    return "\n".join(lines)


def command_text(lang: str) -> str:
    """The command that repeats the settings headless, from the YAML the Settings tab shows."""
    return "\n".join([f"# {t('settings.command_help', lang)}", command_for()])


# ---- Train tab ------------------------------------------------------------------------------
def status_error(message: str, lang: str) -> str:
    return f"✗ **{t('train.refused', lang)}**  \n{html.escape(message)}"


def facts_cell(summary: dict | None) -> str:
    """'7/8 (0/8)' from an eval_summary.json, '–' without one."""
    tuned, base = (summary or {}).get("tuned") or {}, (summary or {}).get("base") or {}
    if not tuned.get("scored"):
        return "–"
    return f"{tuned['right']}/{tuned['scored']} ({base.get('right', 0)}/{base.get('scored', 0)})"


def scores_line(summary: dict | None, lang: str, key: str = "train.scores") -> str:
    """'7 of 8 held-out questions answered with the right facts (base: 0 of 8)…', or '' without a check."""
    tuned, base = (summary or {}).get("tuned") or {}, (summary or {}).get("base") or {}
    if not tuned.get("scored"):
        return ""
    return t(key, lang, right=tuned["right"], scored=tuned["scored"], base_right=base.get("right", 0),
             base_scored=base.get("scored", 0))


def duration_words(seconds: float, lang: str) -> str:
    """'20 s', '30 min', '2.0 h' (秒, 分钟, 小时): a time the way the engine's notes say it (grpo.time_note)."""
    if seconds < 90:
        return t("time.seconds", lang, n=f"{seconds:.0f}")
    if seconds < 5400:
        return t("time.minutes", lang, n=f"{seconds / 60:.0f}")
    return t("time.hours", lang, n=f"{seconds / 3600:.1f}")


def in_words(params: dict, lang: str) -> dict:
    """A message's parameters, each ``<name>_s`` (seconds) also as ``<name>``, a duration in words."""
    out = dict(params)
    for k, v in params.items():
        if k.endswith("_s") and isinstance(v, (int, float)):
            out[k[:-2]] = duration_words(v, lang)
    return out


def job_status(status: dict, lang: str) -> str:
    state = status.get("state", "")
    head = f"{STATE_ICONS.get(state, '')} **{t('state.' + state, lang)}** · `{status.get('name', '')}`"
    message, hint = status.get("message") or "", status.get("hint") or ""
    key = status.get("message_key")
    if key and f"job.{key}" in TEXT:          # the engine's own words, in the user's language
        try:
            message = t(f"job.{key}", lang, **in_words(status.get("message_params") or {}, lang))
        except (KeyError, IndexError, ValueError):
            pass
    if isinstance(status.get("failure"), StudioError):     # a failed run: its words in the user's language
        message, hint = (label_settings(x, lang) for x in status["failure"].render(lang))
    lines = [head, html.escape(message)]
    if hint:
        lines.append(f"ℹ {html.escape(hint)}")
    scores = scores_line((status.get("result") or {}).get("scores"), lang)
    if scores:
        lines.append("✔ " + scores)
    return "  \n".join(lines)


def progress_html(status: dict | None, lang: str, last: dict | None = None) -> str:
    p = (status or {}).get("progress") or {}
    frac = float(p.get("fraction") or 0.0)
    if (status or {}).get("state") == "done":
        frac = 1.0
    last = last or {}
    tps = last.get("tokens_per_sec")
    mem = last.get("gpu_mem_gb")
    stats = [
        (t("train.step", lang), f"{p.get('step', 0)} / {p.get('total_steps') or '–'}"),
        (t("train.eta", lang), _duration(p.get("eta_s")) if status and status.get("state") == "training" else "–"),
        (t("train.elapsed", lang), _duration(p.get("elapsed_s"))),
        (t("train.tps", lang), f"{tps:,.0f}" if isinstance(tps, (int, float)) else "–"),
        (t("plot.train_loss", lang), _loss(p.get("last_loss"))),
        (t("plot.eval_loss", lang), _loss(p.get("last_eval_loss"))),
        (t("train.gpu_mem", lang), f"{mem:.2f} GB" if isinstance(mem, (int, float)) else "–"),
    ]
    cards = "".join(f'<div class="stat"><div class="stat-label">{html.escape(k)}</div>'
                    f'<div class="stat-value">{html.escape(str(v))}</div></div>' for k, v in stats)
    return (f'<div class="progress-outer" role="progressbar" aria-valuenow="{frac * 100:.0f}" '
            f'aria-valuemin="0" aria-valuemax="100"><div class="progress-inner" style="width:{frac * 100:.1f}%">'
            f'</div></div><div class="stats">{cards}</div>')


# ---- Runs and chat ---------------------------------------------------------------------------
def run_label(r: dict, lang: str) -> str:
    state = t("state." + r.get("state", ""), lang) if r.get("state") else ""
    return f"{r['name']} · {state}"


def _short(source: str) -> str:
    """A folder or file by its name (the table is narrow); Hub ids and 'default' as they are."""
    return Path(source).name if source.startswith(("/", "~", ".")) else source


def judge_cell(summary: dict | None) -> str:
    """'6/8 (1/8)' from an eval_summary.json's judge totals, '–' without a judge."""
    judge = (summary or {}).get("judge") or {}
    tuned, base = judge.get("tuned") or {}, judge.get("base") or {}
    if not tuned.get("judged"):
        return "–"
    return f"{tuned['right']}/{tuned['judged']} ({base.get('right', 0)}/{base.get('judged', 0)})"


def runs_frame(runs: Sequence[dict], lang: str) -> pd.DataFrame:
    cols = ["runs.col_name", "runs.col_date", "runs.col_model", "runs.col_data", "runs.col_steps",
            "runs.col_train_loss", "runs.col_eval_loss", "runs.col_facts", "runs.col_state"]
    # The judge's column only once some run was judged: most never are, and the table is narrow.
    judged = any(((r.get("scores") or {}).get("judge") or {}).get("tuned") for r in runs)
    if judged:
        cols.insert(8, "runs.col_judge")
    rows = []
    for r in runs:
        steps = f"{r.get('step', 0)} / {r.get('total_steps') or '–'}"
        row = [r["name"], (r.get("started") or "").replace("T", " "), _short(r.get("model_source", "")),
               _short(r.get("data_source", "")), steps, _loss(r.get("final_loss")), _loss(r.get("final_eval_loss")),
               facts_cell(r.get("scores")), t("state." + r.get("state", ""), lang)]
        if judged:
            row.insert(8, judge_cell(r.get("scores")))
        rows.append(row)
    return pd.DataFrame(rows, columns=[t(c, lang) for c in cols])


def file_size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def export_check(result: Any, lang: str) -> str:
    """The export check (``studio.export_check.CheckResult``) as Markdown: the verdict, the totals and one
    row per question, rows whose verdict differs from the trained model's in bold."""
    def mark(score: dict | None) -> str:
        return "–" if not score or score.get("right") is None else ("✓" if score["right"] else "✗")

    def cell(text: str, limit: int = 160) -> str:
        text = " ".join((text or "").split()).replace("|", "\\|")
        return html.escape(text if len(text) <= limit else text[: limit - 1] + "…")

    head = t("runs.check_passed", lang) if result.passed else t("runs.check_failed", lang).format(
        reasons="; ".join(result.reasons))
    totals = t("runs.check_totals", lang).format(
        trained=result.trained.get("right", 0), export=result.export.get("right", 0),
        scored=result.trained.get("scored", 0), same=result.same, rows=len(result.rows),
        sim="–" if result.similarity is None else f"{result.similarity:g}")
    cols = t("runs.check_cols", lang)
    lines = [head, "", totals, "", f"| {cols} |", "|" + "---|" * (cols.count("|") + 1)]
    for r in result.rows:
        a, b = mark(r["trained_score"]), mark(r["export_score"])
        differs = a != b
        b = f"**{b}**" if differs else b
        sim = "" if r["similarity"] is None else f"{r['similarity']:.0f}"
        lines.append(f"| {cell(r['prompt'], 80)} | {a} | {b} | {'✓' if r['same'] else ''} | {sim} | "
                     f"{cell(r['export'])} |")
    return "\n".join(lines)
