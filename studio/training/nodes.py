"""More than one machine, the side that starts them: what ``torch.distributed.run`` is given, where a
machine other than the main one keeps its files, and the command each other machine runs.

    studio train --nnodes 2 --node-rank 0 --master 192.168.1.10:29500 --config run.yaml   (the main machine)
    studio train --nnodes 2 --node-rank 1 --master 192.168.1.10:29500                     (each other one)

Every machine runs ``torch.distributed.run`` with its own GPUs (``training.gpus``) and the main
machine's address as the rendezvous endpoint. The rendezvous is torch's ``static`` one: a c10d
TCPStore that the main machine (node rank 0) serves at ``training.master``, and ranks numbered by
``--node-rank``, so global rank 0, which writes the run folder, is always the main machine's first
process. (torch's dynamic ``c10d`` backend numbers the machines by host name and process id, not by
``--node-rank``: the run folder could then land on any machine.)

The other machines need no settings of their own: their workers take the main machine's config from
that store (``node_link.py``), and keep what they write in a scratch folder of their own workspace
(``helper_folder``), never a run folder of the Runs tab.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from pathlib import Path

from .. import paths
from ..config import StudioConfig
from ..config_checks import parse_master
from ..process_env import NODE_RANK_ENV, NODES_ENV

JOIN_TIMEOUT_S = 600      # how long the machines wait for each other to start (the rendezvous)
COLLECTIVE_TIMEOUT_S = 600   # one collective across machines at most this long (torch's default: 30 min)


def several(cfg: StudioConfig) -> bool:
    return cfg.training.nnodes > 1


def is_helper(cfg: StudioConfig) -> bool:
    """A machine of a run of several that is not the main one (node rank 0)."""
    return several(cfg) and cfg.training.node_rank > 0


def endpoint(master: str) -> str:
    host, port = parse_master(master)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def launch_args(cfg: StudioConfig) -> list[str]:
    """``torch.distributed.run``'s options for this machine of a run of several machines."""
    t = cfg.training
    return [f"--nnodes={t.nnodes}", f"--node-rank={t.node_rank}", "--rdzv-backend=static",
            f"--rdzv-endpoint={endpoint(t.master)}", f"--rdzv-conf=timeout={JOIN_TIMEOUT_S}", "--max-restarts=0"]


def worker_env(cfg: StudioConfig) -> dict[str, str]:
    t = cfg.training
    return {NODES_ENV: str(t.nnodes), NODE_RANK_ENV: str(t.node_rank)} if several(cfg) else {}


def helper_command(cfg: StudioConfig, node_rank: int) -> str:
    """The command machine ``node_rank`` runs to join ``cfg``'s run (its settings come from the main machine)."""
    t = cfg.training
    parts = ["studio", "train", "--nnodes", str(t.nnodes), "--node-rank", str(node_rank), "--master", t.master]
    if t.gpus != 1:
        parts += ["--gpus", str(t.gpus)]
    return shlex.join(parts)


def helper_commands(cfg: StudioConfig) -> list[str]:
    """One command for each machine other than the main one (none for a run on one machine; ``ConfigError``
    for a main machine's address that is not ADDR:PORT)."""
    if not several(cfg):
        return []
    parse_master(cfg.training.master)         # ConfigError: not ADDR:PORT
    return [helper_command(cfg, r) for r in range(1, cfg.training.nnodes)]


def helper_folder(cfg: StudioConfig) -> str:
    """Where a machine other than the main one keeps its log and state: a scratch folder of its own
    workspace (``<workspace>/node-scratch``), outside the runs folder the app lists."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = paths.workspace() / "node-scratch" / f"{stamp}-node{cfg.training.node_rank}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return str(path)


def launch_note(cfg: StudioConfig, run_dir: Path) -> str:
    """The line a machine's train.log starts with: which machine this is and where the main one is."""
    t = cfg.training
    if not is_helper(cfg):
        return (f"studio: machine 1 of {t.nnodes} (node rank 0, the main machine), serving the rendezvous at "
                f"{t.master}; waiting up to {JOIN_TIMEOUT_S} s for the other machines to start. The run folder "
                f"is {run_dir}.")
    return (f"studio: machine {t.node_rank + 1} of {t.nnodes} (node rank {t.node_rank}), helping the run of the "
            f"main machine at {t.master}, which writes the run folder (metrics, checkpoints, adapter). This "
            f"folder ({run_dir}) keeps only this machine's log.")
