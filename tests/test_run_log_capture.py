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
