"""The UI's window onto the engine: one process-wide object the tabs call, holding small caches.

Engine modules are imported when first used, so the page is served at once and an engine part
that fails to import shows up as a message on the action that needs it, not as a dead app.
Everything here is plain Python (no gradio), kept out of the tab modules so they stay layout.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from studio import paths
from studio.config import ModelConfig, StudioConfig
from studio.device import device_word
from studio.errors import ConfigError, DataError, DeviceBusy, ExportError


def _release_memory() -> None:
    """Collect a dropped model now and hand its GPU memory back."""
    import gc
    gc.collect()
    from studio.models.load import free_gpu
    free_gpu()


def _gradio_tmp() -> Path | None:
    tmp = os.environ.get("GRADIO_TEMP_DIR")
    return Path(tmp) if tmp else None


def _inside(p: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        p.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


class Services:
    def __init__(self):
        self._lock = threading.RLock()                   # re-entered: chat_session releases the old chat under it
        self.last_summary: dict | None = None          # the last model checked on the Model tab
        self._summary_key: tuple | None = None
        self._facts: dict[tuple, dict] = {}
        self._gpus: list[dict] | None = None
        self._tokenizers: dict[tuple, Any] = {}
        self._records: dict[tuple, list[dict]] = {}
        self._reports: dict[tuple, Any] = {}
        self._chat: tuple[str, Any] | None = None      # (run dir, ChatSession): one model in memory at a time
        self.eval_stop = threading.Event()               # the Runs tab's Stop for a running evaluation

    def release_chat(self) -> None:
        """Drop the chat model and hand its memory back: one model in memory at a time, so before anything
        else loads one (training, an export, an evaluation, another run's chat)."""
        with self._lock:
            self._chat = None
            _release_memory()

    # ---- device and model ---------------------------------------------------------------
    def device(self) -> dict:
        from studio.models.load import device_info
        return device_info()

    def inspect_model(self, model_cfg: ModelConfig) -> dict:
        """Load the model once to describe it, then free it (training loads its own copy)."""
        from studio.models.load import load_model, load_tokenizer, model_summary
        tok = load_tokenizer(model_cfg)
        try:
            model = load_model(model_cfg, for_training=False)
        except Exception as e:
            from studio.models.weights_check import explain
            damaged = explain(e, model_cfg.source)
            if damaged:
                raise damaged from None
            raise
        try:
            summary = model_summary(model, tok)
        finally:
            del model
            _release_memory()
        summary["source"] = model_cfg.source
        summary["linear_names"] = summary.get("linear_modules") or []
        with self._lock:
            self.last_summary = summary
            self._summary_key = (model_cfg.source, model_cfg.trust_remote_code)
        return summary

    def linear_names(self, model_cfg: ModelConfig) -> list[str] | None:
        """The checked model's linear layers, when the checked model is the one configured."""
        if self.last_summary and self._summary_key == (model_cfg.source, model_cfg.trust_remote_code):
            return self.last_summary["linear_names"]
        return None

    def facts(self, model_cfg: ModelConfig) -> dict | None:
        """Sizes of the configured model without loading it (None when they cannot be known yet)."""
        key = (model_cfg.source, model_cfg.trust_remote_code)
        if key not in self._facts:
            from studio.models.size import facts_for
            try:
                # Kept, None too (a Hub id is not asked again): each widget change redraws the estimate.
                self._facts[key] = facts_for(model_cfg)
            except Exception:  # an estimate is optional; the load button reports real problems
                return None
        return self._facts[key]

    def memory(self, cfg: StudioConfig) -> dict | None:
        """The estimate for one GPU of the run (``distributed.estimate_for``); None while the model's size is unknown."""
        facts = self.facts(cfg.model)
        if not facts:
            return None
        from studio.training.distributed import estimate_for
        return estimate_for(cfg, self.gpus(), facts)

    def gpus(self) -> list[dict]:
        """The GPUs of this machine (looked up once: they do not change while the app runs)."""
        if self._gpus is None:
            from studio.training.distributed import gpus_summary
            self._gpus = gpus_summary()
        return self._gpus

    def tokenizer(self, model_cfg: ModelConfig) -> Any:
        key = (model_cfg.source, model_cfg.trust_remote_code)
        if key not in self._tokenizers:
            from studio.models.load import load_tokenizer
            self._tokenizers[key] = load_tokenizer(model_cfg)
        return self._tokenizers[key]

    @staticmethod
    def fit_to_gpu(cfg: StudioConfig, facts: dict, budget_gb: float) -> tuple[StudioConfig, list[str], bool]:
        """'Fit to my GPU': (settings, what changed in words, whether they fit) (``studio.fit.fit_to_gpu``, with
        what one step of the run's training method holds)."""
        from studio.fit import fit_to_gpu
        from studio.models.load import device_info
        from studio.training.methods import step_tokens
        return fit_to_gpu(cfg, facts, budget_gb, step_tokens, device_info().get("ram_free_gb"))

    @staticmethod
    def method_metrics(method: str) -> tuple[str, ...]:
        """What the training method ``method`` logs beyond the loss (its ``METRICS``): the method chart's lines."""
        from studio.training.methods import get
        return tuple(get(method).METRICS)

    @staticmethod
    def requested_gpus(cfg: StudioConfig, found: int) -> int:
        """The GPUs a run of ``cfg`` asks for on a machine with ``found`` (``training.gpus`` 0: all of them)."""
        from studio.training.distributed import requested_gpus
        return requested_gpus(cfg, found)

    @staticmethod
    def machine_commands(cfg: StudioConfig) -> list[str] | None:
        """The command each other machine of a run of several runs (``nodes.helper_commands``): [] on one
        machine, None while the main machine's address is not ADDR:PORT (Start says why)."""
        from studio.training.nodes import helper_commands
        try:
            return helper_commands(cfg)
        except ConfigError:
            return None

    @staticmethod
    def global_batch(cfg: StudioConfig, gpus: int) -> int:
        """Rows one optimizer step of ``cfg`` learns from on ``gpus`` GPUs."""
        from studio.training.distributed import global_batch
        return global_batch(cfg, gpus)

    # ---- presets ------------------------------------------------------------------------
    @staticmethod
    def presets() -> list[Any]:
        """The shipped presets, then the user's own (``studio.presets.Preset``: name, summary, summary_zh)."""
        from studio.presets import list_presets
        return list_presets()

    @staticmethod
    def load_preset(name: str, base: StudioConfig) -> StudioConfig:
        from studio.presets import load_preset
        return load_preset(name, base=base)

    @staticmethod
    def save_preset(cfg: StudioConfig, name: str, summary: str, replace: bool) -> Path:
        from studio.presets import save_preset
        return save_preset(cfg, name, summary=summary, replace=replace)

    # ---- data ---------------------------------------------------------------------------
    @staticmethod
    def data_extensions() -> tuple[str, ...]:
        """Every file name ending the studio reads as data (``data.read.EXTENSIONS``)."""
        from studio.data.read import EXTENSIONS
        return EXTENSIONS

    @staticmethod
    def validation_count(rows: int, validation: float) -> int:
        """Rows training holds back for validation out of ``rows`` (``data.validation``: a fraction or a count)."""
        from studio.data.pipeline import validation_count
        return validation_count(rows, validation)

    @staticmethod
    def encoding_label(encoding: str) -> str:
        """A text encoding's readable name, such as 'Windows-1252 (Western European)'."""
        from studio.data.encodings import label
        return label(encoding)

    @staticmethod
    def describe_system_prompt(info: dict) -> str:
        """One sentence on the system prompt a data report found."""
        from studio.data.system_prompt import describe
        return describe(info)

    @staticmethod
    def _stamp(source: str) -> tuple:
        p = {"demo": paths.DEMO_DATA, "demo-preference": paths.DEMO_PREFERENCE}.get(source) or Path(source)
        try:
            st = p.stat()
            return (source, st.st_mtime_ns, st.st_size)
        except OSError:
            return (source, 0, 0)

    def records(self, source: str, encoding: str = "auto") -> list[dict]:
        """The raw rows of a data source (cached while the file is unchanged)."""
        key = (self._stamp(source), encoding)
        if key not in self._records:
            from studio.data.read import read_records
            records, _, _ = read_records(source, encoding=encoding)
            self._records = {key: records}   # one file at a time: data sets can be big
        return self._records[key]

    def inspect_data(self, cfg: StudioConfig, preview_rows: int = 30) -> Any:
        """A DataReport for the configured data, rendered with the configured model's tokenizer (and
        warned about a maximum length past the model's context, when the model's size is known)."""
        from studio.data.pipeline import inspect
        from studio.training.methods import get
        d = cfg.data
        shape = get(cfg.training.method).DATA      # read as the picked method will read it (pairs for DPO...)
        key = (self._stamp(d.file), d.format, d.prompt_column, d.answer_column, d.system_column, d.template,
               d.max_length, d.train_on, d.overlong, d.encoding, cfg.model.source, preview_rows, shape)
        if key in self._reports:
            return self._reports[key]
        try:
            tok = self.tokenizer(cfg.model)
        except Exception:  # no model yet (e.g. offline Hub id): still check the data, without tokens
            tok = None
        facts = self.facts(cfg.model) or {}
        report = inspect(d.file, fmt=d.format, tokenizer=tok, data_cfg=d, preview_rows=preview_rows,
                         context_length=facts.get("context_length"), shape=shape)
        self._reports = {key: report}
        return report

    def pair_example(self, cfg: StudioConfig, index: int) -> dict | None:
        """One preference pair of the data as the report previews it (prompt, chosen, rejected pieces), or None
        when the data has no pairs."""
        pairs = getattr(self.inspect_data(cfg), "preview_pairs", None) or []
        return pairs[max(0, min(index, len(pairs) - 1))] if pairs else None

    def formatted_example(self, cfg: StudioConfig, index: int) -> dict | None:
        """One example's exact training text as (piece, "loss"|None) segments for highlighting."""
        report = self.inspect_data(cfg)
        marked = getattr(report, "preview_marked", None) or []
        if not marked:
            return None
        index = max(0, min(index, len(marked) - 1))
        segments = [(text, "loss" if on else None) for text, on in marked[index]]
        return {"segments": segments, "index": index, "shown": len(marked), "rows": report.rows}

    def save_upload(self, file: Any) -> Path:
        """Move an uploaded file from Gradio's temp folder into the workspace's uploads folder (a move,
        not a copy: the temp folder is in the workspace too, and a big file should not sit there twice).
        A file the studio cannot use is deleted, temp copy included, and refused with the reason."""
        from studio.data.read import DEFAULT_MAX_BYTES, EXTENSIONS
        src = Path(getattr(file, "name", None) or str(file))
        if src.suffix.lower() not in EXTENSIONS:
            self.discard_upload(src)
            raise DataError("'{name}' is not a data file the studio reads. Use one of: {kinds}.", code="data.upload_kind",
                            name=src.name, kinds=", ".join(EXTENSIONS))
        size = src.stat().st_size
        if size > DEFAULT_MAX_BYTES:
            self.discard_upload(src)
            raise DataError("{name} is {size_mb:.0f} MB, more than the limit of {limit_mb:.0f} MB.", code="data.too_big",
                            name=src.name, size_mb=size / 2**20, limit_mb=DEFAULT_MAX_BYTES / 2**20)
        dest = paths.uploads_dir() / src.name
        if dest.exists() and dest.resolve() != src.resolve():
            dest = dest.with_name(f"{dest.stem}-{time.strftime('%Y%m%d-%H%M%S')}{dest.suffix}")
        try:
            shutil.move(str(src), dest)
        except OSError:
            self.discard_upload(src, dest)
            raise
        self._discard_empty_parent(src)
        return dest

    @staticmethod
    def discard_upload(*files: Path | str | None) -> None:
        """Delete rejected uploads (the kept copy and Gradio's temp file), so a refused file takes no disk."""
        for f in files:
            if not f:
                continue
            p = Path(f)
            try:
                if p.is_file() and (_inside(p, paths.uploads_dir()) or _inside(p, _gradio_tmp())):
                    p.unlink()
                    Services._discard_empty_parent(p)
            except OSError:
                pass

    @staticmethod
    def _discard_empty_parent(p: Path) -> None:
        """Gradio keeps each upload in its own hashed folder; an emptied one goes too."""
        tmp = _gradio_tmp()
        parent = p.parent
        if tmp is not None and _inside(parent, tmp) and parent.resolve() != tmp.resolve():
            try:
                parent.rmdir()
            except OSError:
                pass

    # ---- training -----------------------------------------------------------------------
    def manager(self) -> Any:
        from studio.jobs import get_manager
        return get_manager()

    def start(self, cfg: StudioConfig) -> Any:
        self.release_chat()              # the chat model would sit in memory next to the training
        # Through the app (and its API) a run folder is a name inside the workspace, never a path.
        return self.manager().start(cfg, in_workspace=True)

    def warnings(self, cfg: StudioConfig) -> list[str]:
        """Settings that work but probably not as meant with this model (known without loading it)."""
        from studio.config_checks import context_warnings
        facts = self.facts(cfg.model) or {}
        return context_warnings(cfg, facts.get("context_length"))

    def stop(self) -> Any:
        m = self.manager()
        return m.current() if m.stop() else None

    def current_job(self) -> Any:
        return self.manager().current()

    @staticmethod
    def log_tail(run_dir: str, lines: int = 40) -> str:
        """The end of a run's train.log: the studio's notes, warnings and errors."""
        from studio.runs import RunFolder
        return RunFolder(run_dir).log_tail(lines)

    # ---- runs ---------------------------------------------------------------------------
    def all_runs(self) -> list[dict]:
        from studio.evaluation import read_summary
        out = []
        for r in self.manager().runs():
            path = r["run_dir"]
            out.append({**r, "path": path, "name": r.get("name") or Path(path).name, "scores": read_summary(path)})
        return out

    @staticmethod
    def run_scores(path: str | None) -> tuple[list[dict], dict]:
        """The run's last scored evaluation: (rows as ``evaluate`` yields them, totals per model)."""
        from studio.evaluation import read_rows, totals_of
        rows = read_rows(path) if path else []
        return rows, totals_of(rows)

    @staticmethod
    def eval_totals(rows: list[dict]) -> dict:
        from studio.evaluation import totals_of
        return totals_of(rows)

    @staticmethod
    def eval_csv(rows: list[dict], path: Path) -> Path:
        from studio.evaluation import write_csv
        return write_csv(rows, path)

    def chat_runs(self) -> list[dict]:
        return [r for r in self.all_runs() if r["has_adapter"]]

    @staticmethod
    def run_name(path: str) -> str:
        from studio.runs import RunFolder
        return RunFolder(path).name

    @staticmethod
    def run_metrics(path: str) -> list[dict]:
        from studio.runs import RunFolder
        return RunFolder(path).metrics()

    @staticmethod
    def run_config_text(path: str) -> str:
        from studio.runs import RunFolder
        return RunFolder(path).config_text()

    def export_adapter(self, path: str, lang: str = "en") -> Path:
        """Zip a run's adapter folder (its base named by the Hub id) into the workspace's exports folder.
        An earlier zip of the same run is kept: the new one gets a numbered name."""
        from studio.runs import RunFolder
        if not path or not RunFolder(path).has_adapter():
            raise ExportError("The run {name} has no saved adapter yet; export it once it has finished or stopped.",
                              code="export.no_adapter", name=Path(path or "").name)
        return self.export_run(path, "adapter")

    def export_run(self, path: str, kind: str) -> Path:
        """'adapter' | 'merged' | 'gguf-<type>' (gguf-q4_k_m, gguf-q8_0, gguf-f16...) into <workspace>/exports
        (never over an earlier one); a GGUF gets its Modelfile beside it."""
        from studio.export.run_export import export_run, free_destination, parse_choice
        to, dtype = parse_choice(kind)
        dest = free_destination(path, to, dtype)
        self.release_chat()
        return export_run(path, to, dtype, dest, progress=lambda m: None)

    @staticmethod
    def export_choices() -> list[tuple[str, str, str]]:
        """The Runs tab's exports: (choice as ``export_run`` takes it, kind, GGUF type as file names write it)."""
        from studio.export.gguf import label
        from studio.export.run_export import choices, parse_choice
        return [(c, to, label(dtype) if to == "gguf" else "") for c in choices() for to, dtype in [parse_choice(c)]]

    def check_export(self, run_path: str, gguf_path: str | Path) -> Any:
        """The exported GGUF asked the run's evaluation questions in llama.cpp beside the trained model
        (``studio.export_check.check_gguf``); the trained model's answers need the device."""
        from studio.export_check import check_gguf
        self.release_chat()
        return check_gguf(run_path, gguf_path, device_lock=self.manager().device_lock, progress=lambda m: None)

    @staticmethod
    def zip_export(folder: Path) -> Path:
        """``<folder>.zip`` of an exported folder, written beside and renamed when complete; an existing
        zip is never replaced (ExportError)."""
        from studio.export.files import side_path
        final = folder.with_name(folder.name + ".zip")
        with side_path(final) as partial:
            made = Path(shutil.make_archive(str(partial) + "-building", "zip", folder.parent, folder.name))
            made.replace(partial)
        return final

    def resume_run(self, path: str) -> Any:
        """Resume a stopped, failed or interrupted run (refused with ResumeError when it cannot be)."""
        from studio.training.resume import plan_resume
        plan = plan_resume(path)
        self.release_chat()
        return self.manager().start(plan.cfg, **plan.start_kwargs()), plan

    def continue_with(self, path: str, cfg: StudioConfig) -> Any:
        """A new run of ``cfg`` (its method, e.g. DPO, its data and settings) that starts from the finished run at
        ``path``'s adapter, on that run's base model, LoRA shape and template (``extend.plan_from_run``)."""
        from studio.training.extend import plan_from_run
        from studio.jobs import workspace_output_dir
        cfg, origin = plan_from_run(path, cfg)
        cfg.training.output_dir = workspace_output_dir("")
        cfg.validate()
        self.release_chat()
        return self.manager().start(cfg, init_adapter=origin["started_from"]["adapter"], origin=origin)

    def extend_run(self, path: str, steps: int) -> Any:
        from studio.training.extend import plan_extend
        from studio.jobs import workspace_output_dir
        cfg, origin = plan_extend(path, max_steps=int(steps or 0))
        cfg.training.output_dir = workspace_output_dir("")
        self.release_chat()
        return self.manager().start(cfg, init_adapter=origin["extended_from"]["adapter"], origin=origin)

    @staticmethod
    def run_config(path: str) -> StudioConfig:
        from studio.runs import RunFolder
        return RunFolder(path).config()

    @staticmethod
    def run_generation(path: str) -> Any:
        """The generation settings a run records (what its chat, evaluation and export answer with)."""
        from studio.runs import RunFolder
        try:
            return RunFolder(path).config().generation
        except ConfigError:
            from studio.config import GenerationConfig
            return GenerationConfig()

    @staticmethod
    def run_summary(path: str) -> dict | None:
        """The totals of the run's last scored evaluation (its check after training, or a later Evaluate)."""
        from studio.evaluation import read_summary
        return read_summary(path)

    @staticmethod
    def settings_differences(paths_: list[str]) -> list[list]:
        """Rows [setting, value of each run] for the settings that are not the same in all runs."""
        from studio.training.resume import relevant_settings
        settings = []
        for p in paths_:
            try:
                settings.append(relevant_settings(Services.run_config(p)))
            except ConfigError:
                settings.append({})
        keys = sorted({k for s in settings for k in s})
        return [[k, *[str(s.get(k, "")) for s in settings]] for k in keys
                if len({repr(s.get(k)) for s in settings}) > 1]

    def evaluate(self, paths_: list[str], prompts_file: Any = None, judge: str | None = None) -> Any:
        """Rows of the evaluation table as they are ready (one base model, adapters switched); ``judge``: a
        model source grading each answer afterwards (each row then comes again with ``row["judge"]``)."""
        from studio.evaluation import evaluate, load_prompts
        source = getattr(prompts_file, "name", prompts_file) or None
        prompts = load_prompts(source)
        self.release_chat()
        self.eval_stop.clear()        # each run answers with its own recorded settings, as its chat does
        return evaluate(list(paths_), prompts, stop=self.eval_stop, device_lock=self.manager().device_lock,
                        judge=judge or None)

    @staticmethod
    def judge_prompt(lang: str = "en") -> str:
        """The fixed prompt the judge reads (the Chinese one for Chinese questions)."""
        from studio.judge import PROMPT, PROMPT_ZH
        return PROMPT_ZH if lang == "zh" else PROMPT

    @staticmethod
    def eval_judge_totals(rows: list[dict]) -> dict:
        from studio.evaluation import judge_totals_of
        return judge_totals_of(rows)

    # ---- chat ---------------------------------------------------------------------------
    @staticmethod
    def training_system_prompt(run_dir: str) -> str:
        """The system prompt a run's rows were trained with ('' when they had none)."""
        from studio.data.system_prompt import for_run
        return for_run(run_dir).get("system_prompt", "") if run_dir else ""

    @staticmethod
    def chat_ggufs(run_dir: str | None) -> list[str]:
        """The .gguf files exported from a run (newest first), adapters included, their base files not."""
        from studio.export.files import exports_dir
        if not run_dir:
            return []
        name = Path(run_dir).name
        files = [f for f in exports_dir().glob(f"{name}-*.gguf") if f.is_file()]
        return [str(f) for f in sorted(files, key=lambda f: f.stat().st_mtime, reverse=True)]

    @staticmethod
    def gguf_chat_available() -> bool:
        from studio.gguf_chat import available
        return available()

    def gguf_chat_session(self, path: str, run_dir: str | None = None) -> Any:
        """A GgufChatSession for a .gguf file (llama.cpp, CPU), with the run's system prompt and settings.
        Kept like the run's chat model: one model in memory at a time. ChatError naming the pip line when
        llama-cpp-python is not installed."""
        from studio.gguf_chat import GgufChatSession, llama_cpp
        llama_cpp()                      # said before anything is released or loaded
        key = f"gguf:{Path(path).expanduser()}"
        with self._lock:
            if self._chat is not None and self._chat[0] == key:
                return self._chat[1]
            self.release_chat()
            session = GgufChatSession.open(path, run_dir=run_dir or None)
            self._chat = (key, session)
            return session

    def chat_session(self, run_dir: str, lang: str = "en") -> Any:
        """A ChatSession for a run: the just-finished job's model when it is still in memory,
        else loaded from the run folder. One session is kept; choosing another run replaces it.
        While training runs, refuses at once (DeviceBusy) instead of loading a second model."""
        from studio import inference
        run_dir = str(run_dir)
        job = self.current_job()
        if job is not None and job.active:
            raise DeviceBusy("Training is using the {device}; chat will be available when it finishes or is stopped.",
                             code="device.training", device=device_word())
        lock = self.manager().device_lock
        lock.check_free_elsewhere("Chat")   # `studio train` in a terminal has the device
        with self._lock:
            if self._chat is not None and self._chat[0] == run_dir:
                return self._chat[1]
            self.release_chat()
            session = inference.ChatSession.for_run(run_dir, device_lock=lock, job=job)
            self._chat = (run_dir, session)
            return session
