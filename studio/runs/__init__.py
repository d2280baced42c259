"""Run folders: what a run leaves on disk, read and written by training, chat, export, evaluation and
the app alike. Sits below all of them (it imports only config and paths), so none of them has to
import another to find a run's files.

    folder.py    RunFolder (paths, config, state.json, metrics, train.log), list_run_folders
    log.py       train.log: the writer (capture_logs) and the reader (log_tail)
    metrics.py   metrics.jsonl: MetricsLog (written by the trainer) and MetricsFollower (read while written)
"""

from .folder import RunFolder, default_run_name, find_run, is_bare_name, list_run_folders, slug
from .log import capture_logs, log_tail
from .metrics import MetricsFollower, MetricsLog

__all__ = ["MetricsFollower", "MetricsLog", "RunFolder", "capture_logs", "default_run_name", "find_run", "is_bare_name",
           "list_run_folders",
           "log_tail", "slug"]
