"""While a run writes train.log, only its own thread's records go there; other threads' reach the terminal."""

from __future__ import annotations

import logging
import threading

from studio.config import StudioConfig
from studio.runs import RunFolder


def test_capture_takes_only_the_training_threads_records(tmp_path, caplog):
    run = RunFolder.create(StudioConfig(), str(tmp_path / "run"))
    caplog.set_level(logging.INFO)
    started, logged = threading.Event(), threading.Event()

    def other_thread():            # e.g. a UI handler failing while the run trains
        started.wait(5)
        logging.getLogger("studio.ui").error("a UI handler failed")
        logged.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with run.capture_logs() as log:
        log.info("step 1 of the run")
        started.set()
        assert logged.wait(5)
    t.join(5)
    text = run.log_path.read_text()
    assert "step 1 of the run" in text and "a UI handler failed" not in text
    terminal = [r.getMessage() for r in caplog.records]
    assert "a UI handler failed" in terminal and "step 1 of the run" not in terminal


def test_the_log_tail_keeps_the_studios_notes_and_every_warning_with_its_traceback(tmp_path):
    run = RunFolder.create(StudioConfig(), str(tmp_path / "run"))
    with run.capture_logs() as log:
        logging.getLogger("transformers.trainer").info("a config dump nobody reads")
        log.info("Data: 3 training rows")
        logging.getLogger("peft").warning("a library warning")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("The run failed")
    tail = run.log_tail()
    assert "config dump" not in tail
    assert "Data: 3 training rows" in tail and "a library warning" in tail
    assert "ValueError: boom" in tail and "Traceback" in tail     # continuation lines go with their record
    assert run.log_tail(lines=1).endswith("ValueError: boom")
    assert RunFolder(tmp_path / "nowhere").log_tail() == ""


def test_a_run_folder_reads_its_own_files(tmp_path):
    cfg = StudioConfig(name="reader")
    run = RunFolder.create(cfg, str(tmp_path / "run"))
    assert "name: reader" in run.config_text() and run.config().name == "reader"
    assert run.metrics() == [] and not run.has_adapter()
    (run.metrics_path).write_text('{"type": "train", "step": 1, "loss": 2.0}\n')
    assert run.metrics() == [{"type": "train", "step": 1, "loss": 2.0}]
    assert RunFolder(tmp_path / "nowhere").config_text() == ""
