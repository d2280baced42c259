"""The states a run goes through, and the keys of the record every runner writes to ``state.json``.

Apart from the runners (``background.py``) because the resume checks read them too (is a run still going?),
and the runners start a resume: each would otherwise import the other.
"""

from __future__ import annotations

PENDING, LOADING, TRAINING, SAVING, SCORING = "pending", "loading", "training", "saving", "scoring"
DONE, STOPPED, FAILED = "done", "stopped", "failed"
ACTIVE_STATES = (PENDING, LOADING, TRAINING, SAVING, SCORING)
FINAL_STATES = (DONE, STOPPED, FAILED)
# What ``BackgroundRun._state_record`` writes of every run; anything else in state.json is the runner's ``info``.
STATE_KEYS = frozenset({"state", "message", "hint", "error", "name", "started", "finished", "step", "total_steps",
                        "epoch", "elapsed_s", "eta_s", "final_loss", "final_eval_loss", "model_source",
                        "data_source", "adapter", "pid", "result", "failure", "message_key", "message_params"})
