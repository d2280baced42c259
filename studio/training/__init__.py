"""Fine-tuning runs: the job (a background thread) and its callbacks.

The job manager in ``studio/jobs.py`` starts and owns jobs; chat lives in ``studio/inference.py``;
the run folder a job writes (and its metrics log) in ``studio/runs/``.
"""

from .callbacks import MetricsCallback, Progress, StopCallback
from .job import ACTIVE_STATES, DONE, FAILED, FINAL_STATES, LOADING, PENDING, SAVING, STOPPED, TRAINING, TrainingJob

__all__ = ["ACTIVE_STATES", "DONE", "FAILED", "FINAL_STATES", "LOADING", "PENDING", "SAVING", "STOPPED",
           "TRAINING", "MetricsCallback", "Progress", "StopCallback", "TrainingJob"]
