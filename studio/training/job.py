"""One fine-tuning run: load, wrap with LoRA, train with the transformers ``Trainer``, save the adapter.

``TrainingJob.run()`` does the whole run synchronously; ``start()`` runs it in a background thread
(the job manager in ``studio/jobs.py`` owns that thread, not a request handler). Everything a watcher
needs is on the job (``state``, ``message``, ``hint``, ``progress``, ``metrics``, ``result``) and in the
run folder (``state.json``, ``metrics.jsonl``), so a later runner may do the same work in a subprocess
and the UI can follow the files instead.

States: pending → loading → training → saving → done | stopped | failed. A failure of any kind
(bad data found late, out of memory, disk full, a bug) is caught, written to ``state.json`` and
``train.log`` with a plain message and a hint, and the model is freed; the process keeps serving.

The job keeps the trained model in memory after it ends (``keep_model=True``) so chat can use it
without reloading; ``release()`` frees it (the manager does so before the next job starts).
"""

from __future__ import annotations

import datetime as _dt
import gc
import logging
import time
import traceback
from pathlib import Path
from typing import Any, Iterable

from ..config import StudioConfig
from ..models.load import free_gpu
from ..process_env import rank
from ..runs import MetricsLog, RunFolder
from .args import estimate_total_steps
from .background import BackgroundRun
from .states import (ACTIVE_STATES, DONE, FAILED, FINAL_STATES, LOADING, PENDING, SAVING,  # noqa: F401
                     SCORING, STOPPED, TRAINING)
from .callbacks import MetricsCallback, Progress, StopCallback
from .failures import explain
from . import cpu_threads
from . import methods
from .gpu_memory import forget_optimizer_globals, gpu_memory_gb, gpu_snapshot

_log = logging.getLogger("studio.training")



def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


class TrainingJob(BackgroundRun):
    """A run of ``cfg``. ``model``/``tokenizer``/``data`` may be passed in already loaded (the UI's
    "use the model already loaded", and tests); otherwise they are loaded from the config.

    A ``PeftModel`` passed in is unloaded to its base first: every run trains a fresh adapter.
    ``callbacks`` are extra ``TrainerCallback``s. ``device_lock`` is the lock shared with chat
    (``studio.device.DeviceLock``); the job holds it from loading to the end of saving.
    """

    thread_name = "training"

    def __init__(self, cfg: StudioConfig, run_dir: str | Path | RunFolder | None = None, model: Any = None,
                 tokenizer: Any = None, data: Any = None, callbacks: Iterable = (), keep_model: bool = True,
                 device_lock: Any = None, resume_from: str | Path | None = None,
                 init_adapter: str | Path | None = None, origin: dict | None = None,
                 after_training: Any = None):
        # after_training(job, log) -> dict | None: the questions asked of the trained model before the device
        # is let go (evaluation.score_after_training, passed in by the job manager); its summary goes into
        # ``result["scores"]``.
        self.after_training = after_training
        if isinstance(run_dir, RunFolder):
            run = run_dir
        elif run_dir is not None:
            run = RunFolder(run_dir)
            run.path.mkdir(parents=True, exist_ok=True)
            if not run.config_path.exists():
                cfg.save(run.config_path)
        else:
            run = RunFolder.create(cfg, cfg.training.output_dir or None)
        super().__init__(cfg, run, device_lock, resume_from, init_adapter, origin)
        self.model = model
        self.tokenizer = tokenizer
        self.data = data
        self.extra_callbacks = list(callbacks)
        self.keep_model = keep_model
        self._owns_model = model is None
        self._peft_model = None
        # While the device lock is held an outcome (done, stopped, failed) waits here and is shown once the lock
        # is let go: a chat sent the moment the app says "Done" must find the device free.
        self._holding_device = False
        self._outcome: str | None = None
        self._neftune = None  # NEFTune's hooks while training (neftune.py)
        self._saver = None    # checkpoints written in the background (background_save.py), one-process runs
        self.progress = Progress(total_steps=cfg.training.max_steps)
        self.metrics = MetricsLog(self.run.metrics_path)
        if self.resume_from is not None:
            self.metrics.load_existing()        # the curve keeps the steps before the checkpoint
        self._data_notes: list[str] = []       # rows left out, held back, read how (said before training)
        self._gpu_before: dict = {}
        self._write_state()

    @property
    def method(self) -> Any:
        """How the run learns from its rows: the module of ``training.method`` (``methods/sft.py``...)."""
        return methods.of(self.cfg)

    # ---- control ------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to stop: it ends within one optimizer step and saves the adapter trained so far."""
        self._stop.set()
        if self.active:
            self._set(message="Stopping: finishing the current step, then saving the adapter.", key="stopping")

    def release(self) -> None:
        """Free the model the job still holds (chat sessions made from this job stop working)."""
        peft_model = self._peft_model
        self._peft_model = None
        if peft_model is not None and not self._owns_model:
            try:  # give the caller its model back without our LoRA layers
                peft_model.unload()
            except Exception:
                pass
        self.model = None
        del peft_model
        forget_optimizer_globals()
        gc.collect()
        free_gpu()
        if self.info.get("device") == "cuda":
            self.info.update(gpu_snapshot("gpu_mem_after_release_gb"))
            self._write_state()

    # ---- status -------------------------------------------------------------------------
    def _write_state(self) -> None:
        self._save_state({**self._state_record(), **self.info})

    def _on_row(self, row: dict) -> None:
        _log.info("%s", MetricsCallback.describe(row, self.progress.total_steps))
        self._say_pace(row)
        self._write_state()

    def _say_pace(self, row: dict) -> None:
        """A method whose steps are slow and steady (GRPO: ``pace`` and ``time_note``) says, as the run's message
        while it trains, how long a step and the rest of the run take."""
        pace = getattr(self.method, "pace", None)
        if pace is None or self.state != TRAINING or row.get("type") != "train":
            return
        figures = pace(row, self.progress.total_steps)
        if figures:
            self._set(message=self.method.time_note(figures["step_s"], row["step"], self.progress.total_steps),
                      key="time_left", write=False, **figures)
        elif self.message_key == "time_left":      # the last step: nothing left to wait for
            self._set(message="Training.", key="training", write=False)

    # ---- the run ------------------------------------------------------------------------
    def run_sync(self) -> "TrainingJob":
        """The whole run in the calling thread. Never raises: the outcome is on the job."""
        self.started = _now()
        try:
            with self.run.capture_logs() as log:
                self._run_logged(log)
        except Exception as exc:  # train.log itself could not be opened (folder gone, disk full)
            self._fail(exc, _log)
            self.release()
            self.finished = self.finished or _now()
            self._write_state()
        return self

    def _run_logged(self, log) -> None:
        t0 = time.monotonic()
        self._gpu_before = gpu_snapshot("gpu_mem_before_gb", reset_peak=True)
        holding_lock = False
        try:
            holding_lock = self._holding_device = self._acquire_device(log)
            if holding_lock or self.device_lock is None:
                self._train(log)
                if self._outcome_so_far() == DONE and self.after_training is not None and self.model is not None:
                    self._score(log)
        except Exception as exc:  # every failure ends here, in plain words
            self._fail(exc, log)
        finally:
            if holding_lock:
                self.device_lock.release()
            with self._state_lock:
                self._holding_device = False
                outcome, self._outcome = self._outcome, None
            if outcome is not None:
                self._set(outcome, write=False)       # written below, with its end time
            self.progress.elapsed_s = round(time.monotonic() - t0, 1)
            self.finished = _now()
            if self.state == FAILED or not self.keep_model:
                self.release()
            self._write_state()
            self.metrics.close()

    def _set(self, state: str | None = None, message: str | None = None, hint: str | None = None,
             key: str = "", *, write: bool = True, **params) -> None:
        if state in FINAL_STATES and self._holding_device:
            self._outcome, state = state, None       # shown when the device is free (see __init__)
        elif state is not None:
            self._outcome = None
        super()._set(state, message, hint, key, write=write, **params)

    def _outcome_so_far(self) -> str:
        return self._outcome or self.state

    def _acquire_device(self, log) -> bool:
        if super()._acquire_device():
            return True
        if self.device_lock is not None:
            self._finish_stopped_early(log)
        return False

    def _finish_stopped_early(self, log) -> None:
        log.info("Stopped before training began.")
        self._set(STOPPED, "Stopped before training began; nothing was trained.", key="stopped_early")

    def _train(self, log) -> None:
        """The run's steps in order. A stop asked for while loading ends it before training begins."""
        import torch

        log.info("Run folder: %s", self.run.path)
        self._set(LOADING, "Loading the tokenizer.", key="loading_tokenizer")
        self._setup_tokenizer()
        data = self._setup_data(log)
        if self._stop.is_set():
            return self._finish_stopped_early(log)
        model = self._load_model()
        if self._stop.is_set():
            self.model = None if self._owns_model else model
            return self._finish_stopped_early(log)
        from ..models.load import check_vocabulary
        check_vocabulary(model, [*data.train, *data.validation], self.cfg.model.source)
        on_cuda = torch.cuda.is_available()
        resolved = self._setup_model(model, data, on_cuda, log)
        del model                      # the PeftModel on self holds it from here
        trainer, metrics_cb, stop_cb = self._setup_trainer(data, resolved, log)
        try:
            self._run(trainer, stop_cb, data, on_cuda, log)
        finally:
            if self._neftune is not None:       # the trained model answers chat without noise hooks
                self._neftune.detach()
                self._neftune = None
            trainer.callback_handler.callbacks.clear()
            del trainer                # the optimizer state goes with it, before the adapter is saved
            gc.collect()
        self._save(metrics_cb, stop_cb.stopped_at is not None, on_cuda, log)

    def _setup_tokenizer(self) -> None:
        if self.tokenizer is None:
            from ..models.load import load_tokenizer
            self.tokenizer = load_tokenizer(self.cfg.model)

    def _setup_data(self, log) -> Any:
        """Read, render and mask the rows (unless passed in), and record what the run was trained on."""
        from ..data.system_prompt import record as record_system_prompt

        if self.data is None:
            from ..data.pipeline import prepare
            self._set(message="Reading and preparing the training data.", key="preparing_data")
            shape = self.method.DATA
            if shape == "conversation":
                self.data = prepare(self.cfg.data, self.tokenizer, self.cfg.training.seed)
            else:    # preference rows: pairs or labelled answers (data.types.DATA_SHAPES)
                self.data = prepare(self.cfg.data, self.tokenizer, self.cfg.training.seed, shape=shape)
        data = self.data
        self.chat_template = data.chat_template
        record_system_prompt(self.run.path, data)    # chat sends the system prompt the rows were trained with
        self._record_fingerprint(data, log)
        self.progress.total_steps = estimate_total_steps(self.cfg, len(data.train))
        log.info("Data: %d training rows, %d validation rows, template %s.",
                 len(data.train), len(data.validation), data.template_name)
        if getattr(data.report, "message", ""):
            log.info("Data report: %s", data.report.message)
        from ..data.pipeline import training_notes
        self._data_notes = training_notes(data.report) if getattr(data, "report", None) is not None else []
        for note in self._data_notes:
            log.info("Data: %s", note)
        return data

    def _load_model(self) -> Any:
        """The base model: loaded from the config, or the one passed in without a previous run's LoRA."""
        self._set(message="Loading the model.", key="loading_model")
        if self.model is None:
            from ..models.load import load_model
            return load_model(self.cfg.model, for_training=True)
        from peft import PeftModel
        if isinstance(self.model, PeftModel):
            from ..models.lora import clean_base
            return clean_base(self.model)  # a previous run's model: start from its clean base
        return self.model

    def _setup_model(self, model: Any, data: Any, on_cuda: bool, log) -> Any:
        """Resolve the trainer's arguments, pick the attention, add the LoRA adapters (optionally starting
        from an earlier adapter) and record what was chosen in ``self.info``. Returns the resolved args."""
        from transformers import set_seed

        from ..models.load import resolve_dtype
        from ..models.lora import apply_lora, parameter_counts, skip_input_casts_under_autocast
        from .attention import resolve_attention, set_attention

        cfg = self.cfg
        self._set(message="Adding the LoRA adapters.", key="adding_lora")
        set_seed(cfg.training.seed)     # LoRA's A matrices are random: the same seed gives the same run
        has_val = len(data.validation) > 0
        dtype = resolve_dtype(cfg.model)
        resolved = self.method.training_args(cfg, str(self.run.checkpoints_dir), on_cuda, dtype, has_val,
                                             len(data.train))
        padding_free = getattr(resolved.args, "padding_free", False)     # GRPO's batches are padded
        attention = set_attention(model, resolve_attention(cfg.training.attention, on_cuda, padding_free,
                                                           getattr(model, "config", None), dtype))
        peft_model = apply_lora(model, cfg.lora, cfg.training.gradient_checkpointing != "off")
        skip_input_casts_under_autocast(peft_model)
        self._peft_model = self.model = peft_model
        from ..models.lora import converts_on_save
        if converts_on_save(cfg.lora) and rank() == 0:     # one process writes the run folder
            from .initial_adapter import save_initial
            save_initial(peft_model, self.run.path)
        if self.init_adapter is not None:
            from .extend import load_adapter_weights
            load_adapter_weights(peft_model, self.init_adapter)
            log.info("Starting from the adapter in %s.", self.init_adapter)

        for note in resolved.notes:
            log.info(note)
        counts = parameter_counts(peft_model)      # 4-bit packed weights counted as real weights
        trainable, total = counts["trainable"], counts["total"]
        self.info = {"device": "cuda" if on_cuda else "cpu", "precision": resolved.precision,
                     "optimizer": resolved.optimizer, "attention": attention,
                     "notes": self._data_notes + list(resolved.notes),
                     "padding_free": padding_free, "fused_kernels": resolved.args.use_liger_kernel,
                     "train_rows": len(data.train), "validation_rows": len(data.validation),
                     "template": data.template_name, "trainable_params": trainable, "total_params": total}
        self.info.update(self._gpu_before)
        log.info("Device %s, precision %s, optimizer %s, attention %s, %s batches, fused kernels %s; "
                 "%s of %s parameters trainable.", self.info["device"], resolved.precision, resolved.optimizer,
                 attention, "padding-free" if padding_free else "padded",
                 "on" if resolved.args.use_liger_kernel else "off", f"{trainable:,}", f"{total:,}")
        return resolved

    def _setup_trainer(self, data: Any, resolved: Any, log) -> tuple:
        """The method's trainer (SFT: TRL's SFTTrainer) over its dataset of the rows, with the studio's
        callbacks, and the layers to checkpoint decided. Returns (trainer, metrics callback, stop callback)."""
        from transformers import PrinterCallback

        from .resume import CompleteCheckpointMark

        method = self.method
        metrics_cb = MetricsCallback(self.metrics, self.progress, on_row=self._on_row, extra_metrics=method.METRICS)
        stop_cb = StopCallback(self._stop)
        has_val = len(data.validation) > 0
        trainer = method.trainer(self._peft_model, resolved.args, self.tokenizer, method.dataset(data.train),
                                 method.dataset(data.validation) if has_val else None,
                                 [metrics_cb, stop_cb, CompleteCheckpointMark(), *self.extra_callbacks],
                                 resolved.precision, method.collator(resolved.args, self.tokenizer))
        from ..models.lora import follow_patched_forward
        follow_patched_forward(self._peft_model)
        from . import background_save
        self._saver = background_save.install(trainer)     # None: the Trainer's own saves (several processes)
        self._tensorboard_into_run(trainer)
        self._checkpoint_layers(trainer, self._peft_model, data.train, resolved, log)
        if self.cfg.training.neftune_noise_alpha > 0:
            from .neftune import RowScaledNoise
            self._neftune = RowScaledNoise(self._peft_model, self.cfg.training.neftune_noise_alpha).attach()
        # The trainer prints each log dict to stdout when progress bars are off; the rows go to
        # metrics.jsonl and train.log instead.
        trainer.remove_callback(PrinterCallback)
        return trainer, metrics_cb, stop_cb

    def _tensorboard_into_run(self, trainer: Any) -> None:
        """TensorBoard's event files in ``<run>/tensorboard`` (transformers would put them under the
        checkpoints folder, in a dated folder of its own, and reads no logging_dir argument any more)."""
        from transformers.integrations import TensorBoardCallback
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback):
                callback.logging_dir = str(self.run.path / "tensorboard")

    def _run(self, trainer: Any, stop_cb: StopCallback, data: Any, on_cuda: bool, log) -> None:
        """Train (from the checkpoint when resuming), then the one evaluation when ``eval_steps`` is 0."""
        import torch

        threads_before = torch.get_num_threads()
        if not on_cuda:
            threads, others = cpu_threads.starting_threads()
            torch.set_num_threads(threads)     # this thread's ops (and CPU backward, which runs here too)
            self.info["cpu_threads"] = threads
            log.info(cpu_threads.note(threads, cpu_threads.cpu_cores(), watching=others is not None))
            if others is not None:
                trainer.add_callback(cpu_threads.watcher(threads, others, log, self.info))
        try:
            if self.resume_from is not None:
                log.info("Resuming from %s.", self.resume_from)
                self._set(TRAINING, f"Resuming from {self.resume_from.name}.", key="resuming",
                          checkpoint=self.resume_from.name)
            else:
                self._set(TRAINING, "Training.", key="training")
            trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
            stopped = stop_cb.stopped_at is not None
            if len(data.validation) > 0 and not stopped and self.cfg.training.eval_steps == 0:
                self._set(message="Measuring the validation loss.", key="validating")
                trainer.evaluate()     # the one evaluation at the end when eval_steps is 0
        finally:
            if self._saver is not None:
                # A checkpoint still being written is finished before anything else (a failure of the run is
                # already on its way; the end of training waited, and raised a failed write, itself).
                self._saver.wait(raise_failure=False)
            torch.set_num_threads(threads_before)

    def _save(self, metrics_cb: MetricsCallback, stopped: bool, on_cuda: bool, log) -> None:
        """Save the adapter, leave the model ready for chat, and record the outcome."""
        from .attention import set_attention

        self._set(SAVING, "Saving the adapter.", key="saving")
        peft_model = self._peft_model
        set_attention(peft_model, "sdpa")    # generation passes no row boundaries
        self._save_adapter(peft_model, self.tokenizer, self.data.chat_template)
        peft_model.config.use_cache = True   # the trainer turned the cache off; chat wants it
        self.result = self._result(metrics_cb, stopped)
        if self.method.DATA != "conversation":
            self._summarise_preference(log)
        if on_cuda:
            import torch
            self.info["gpu_mem_peak_reserved_gb"] = gpu_memory_gb()[1]
            self.info["gpu_mem_peak_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        p = self.progress
        loss = f"{p.last_loss:.4f}" if p.last_loss is not None else "n/a"
        if stopped:
            log.info("Stopped at step %d of %d.", p.step, p.total_steps)
            self._set(STOPPED, f"Stopped at step {p.step} of {p.total_steps} (loss {loss}); "
                               f"the adapter trained so far is in {self.run.adapter_dir}.", key="stopped", step=p.step,
                      total=p.total_steps, loss=loss, adapter=str(self.run.adapter_dir))
        else:
            log.info("Finished %d steps.", p.step)
            self._set(DONE, f"Finished {p.step} steps (loss {loss}). The adapter is in {self.run.adapter_dir}.", key="done",
                      steps=p.step, loss=loss, adapter=str(self.run.adapter_dir))

    def _summarise_preference(self, log) -> None:
        """A preference run's figures on its held-back rows, before and after (``result["preference"]``)."""
        from .methods.preference_summary import preference_summary

        summary = preference_summary(self.metrics.rows("eval"), len(self.data.validation), self.cfg.training.method)
        if summary:
            self.result["preference"] = summary
            log.info("Preference: %s", summary["sentence"])

    def _score(self, log) -> None:
        """Ask the held-out questions; a failure here is logged and leaves the trained run as it is."""
        done_message = self.message
        self._set(SCORING, "Asking the trained model the held-out questions.")
        try:
            summary = self.after_training(self, log)
        except Exception as exc:       # the adapter is saved: the run is done whatever the questions do
            log.warning("The held-out questions could not be asked: %s", exc)
            summary = None
        if summary:    # the app and `studio train` say it in the user's words
            self.result = {**(self.result or {}), "scores": summary}
        self._set(DONE, done_message)

    def _record_fingerprint(self, data, log) -> None:
        """A fresh run records its data hash, settings, versions and device (resume.py checks them);
        a resumed one adds when and from which step it went on."""
        from .resume import make_fingerprint, read_fingerprint, write_fingerprint
        try:
            if self.resume_from is None:
                write_fingerprint(self.run, make_fingerprint(self.cfg, data, self.origin))
                return
            fp = read_fingerprint(self.run.path) or make_fingerprint(self.cfg, data)
            fp.setdefault("resumed", []).append({"from": self.resume_from.name, "at": _now()})
            write_fingerprint(self.run, fp)
        except OSError as e:   # the run can go on; only its record is incomplete
            log.warning("Could not write the run's fingerprint: %s", e)

    def _checkpoint_layers(self, trainer, model, rows, resolved, log) -> None:
        """'auto': measure the largest batch on the GPU and checkpoint only the layers that must be.
        A CPU has the memory to keep every activation, so nothing is checkpointed there."""
        from . import checkpointing

        setting = self.cfg.training.gradient_checkpointing
        tile = getattr(self.cfg.training, "tile_mlp", "off")
        if tile == "on" or (tile == "auto" and setting == "offload"):
            self._tile_mlp(model, log)
        if self.cfg.lora.adapter == "prefix":       # its cache of keys and values cannot pass checkpointed layers
            self.info["checkpointed_layers"] = 0
            if setting == "auto" and self.info["device"] == "cuda":
                self.info["notes"].append("Gradient checkpointing is off: prefix tuning does not work with it.")
            return
        if setting != "auto":
            self.info["checkpointed_layers"] = "all" if setting in ("on", "offload") else 0
            if setting == "offload":        # every layer's input kept in CPU memory (models/offload.py)
                checkpointing.set_offload(model, True)
                self.info["activation_offload"] = True
                log.info("Gradient checkpointing: offload, every layer's input kept in CPU memory%s.",
                         "" if self.info["device"] == "cuda" else " (on a CPU run it already is: nothing is copied)")
            return
        if self.info["device"] != "cuda":
            checkpointing.set_checkpointed_layers(model, 0)
            self.info["checkpointed_layers"] = 0
            return
        self._set(message="Measuring the memory of the largest batch.", key="measuring_memory")
        if resolved.args.use_liger_kernel:     # the trainer would apply them at train(); measure with them
            from transformers.integrations.liger import apply_liger_kernel
            apply_liger_kernel(model, resolved.args.liger_kernel_config)
        state_bytes = 2 if "8bit" in resolved.optimizer else 8
        batch, tokens = self.method.worst_batch(rows, self.cfg.training.batch_size, trainer.data_collator)
        decision = checkpointing.choose(trainer, model, batch, tokens, self.info["trainable_params"] * state_bytes,
                                        prepare_offload=(lambda: self._tile_mlp(model, log)) if tile == "auto" else None)
        self.info["checkpointed_layers"] = decision.layers
        self.info["activation_offload"] = decision.offload
        self.info["notes"].append(decision.note)
        log.info(decision.note)

    def _tile_mlp(self, model, log) -> None:
        """Each layer's MLP over long rows in tiles (training.tile_mlp, models/tiling.py)."""
        from ..config import MLP_TILE_TOKENS
        from ..models.tiling import set_mlp_tiling
        n = set_mlp_tiling(model, True)
        self.info["mlp_tiled"] = bool(n)
        if n:
            log.info("MLP tiling: %d layers' MLPs run rows longer than %s tokens in tiles.", n,
                     f"{MLP_TILE_TOKENS:,}")

    def _save_adapter(self, peft_model, tokenizer, chat_template: str) -> None:
        """Write adapter/ atomically: to a side folder first, renamed when complete. A PiSSA / OLoRA
        adapter is saved converted (a plain LoRA of twice the rank on the original base), and the model
        kept for chat becomes that original base with the converted adapter, so 'adapter off' is the base."""
        from ..models.lora import converts_on_save

        if not converts_on_save(self.cfg.lora):
            # Only the trained adapter: DPO and KTO may hold a frozen copy of the adapter they started from as
            # their reference ("ref", methods/reference.py), which is not part of the result.
            self.run.write_adapter(lambda folder: peft_model.save_pretrained(
                str(folder), safe_serialization=True, selected_adapters=["default"]), tokenizer, chat_template)
            return
        from .initial_adapter import restore_original, save_converted
        self.run.write_adapter(lambda folder: save_converted(peft_model, folder, self.run.path), tokenizer,
                               chat_template)
        self._peft_model = self.model = restore_original(peft_model, self.run.adapter_dir, self.run.path)

    def _result(self, metrics_cb: MetricsCallback, stopped: bool) -> dict:
        p = self.progress
        train_rows = self.metrics.rows("train")
        eval_rows = self.metrics.rows("eval")
        runtime = metrics_cb.summary.get("train_runtime") or p.elapsed_s or None
        return {"state": STOPPED if stopped else DONE, "steps": p.step, "total_steps": p.total_steps,
                "train_loss": train_rows[-1]["loss"] if train_rows else None,
                "train_loss_mean": metrics_cb.summary.get("train_loss"),
                "eval_loss": eval_rows[-1]["eval_loss"] if eval_rows else None,
                "tokens_seen": p.tokens_seen,
                # this session's tokens over this session's time (a resumed run's earlier steps took other time)
                "tokens_trained": p.tokens_seen - metrics_cb.start_tokens,
                "tokens_per_sec": round((p.tokens_seen - metrics_cb.start_tokens) / runtime, 1) if runtime else None,
                "train_runtime_s": round(runtime, 1) if runtime else None,
                "adapter_dir": str(self.run.adapter_dir)}

    def _fail(self, exc: BaseException, log) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        log.error("The run failed:\n%s", "".join(traceback.format_exception(exc)))
        self.failure = explain(exc, str(self.run.log_path))     # a StudioError: the UI shows it in its language
        self._set(FAILED, self.failure.message, self.failure.hint)
