"""Fine-tuning runs: the job (a background thread), its callbacks, the metrics log and the run folder.

The job manager in ``studio/jobs.py`` starts and owns jobs; chat lives in ``studio/inference.py``.
"""

from .callbacks import MetricsCallback, Progress, StopCallback
from .job import ACTIVE_STATES, DONE, FAILED, FINAL_STATES, LOADING, PENDING, SAVING, STOPPED, TRAINING, TrainingJob
from .metrics import MetricsFollower, MetricsLog
from .run_folder import RunFolder, list_run_folders

__all__ = ["ACTIVE_STATES", "DONE", "FAILED", "FINAL_STATES", "LOADING", "PENDING", "SAVING", "STOPPED",
           "TRAINING", "MetricsCallback", "MetricsFollower", "MetricsLog", "Progress", "RunFolder",
           "StopCallback", "TrainingJob", "list_run_folders"]
