"""Where this process stands in a run of several (one process per GPU, started by the studio's launcher):
its rank and the strategy, read from the environment the launcher sets. Model loading needs it (each
rank's own GPU, FSDP's 4-bit storage) as well as training, so it sits below both and imports nothing of
the studio."""

from __future__ import annotations

import os
from typing import Any

STRATEGY_ENV = "STUDIO_STRATEGY"       # set by the launcher for its workers: "single" | "ddp" | "fsdp"
NODES_ENV = "STUDIO_NNODES"            # several machines (training/nodes.py): how many, and which one this is
NODE_RANK_ENV = "STUDIO_NODE_RANK"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def world_size() -> int:
    return _env_int("WORLD_SIZE", 1)


def nnodes() -> int:
    """The machines of the run (1: this one only)."""
    return max(1, _env_int(NODES_ENV, 1))


def node_rank() -> int:
    """This machine's number in the run: 0 is the main machine, which writes the run folder."""
    return _env_int(NODE_RANK_ENV, 0)


def is_main() -> bool:
    return rank() == 0


def strategy() -> str:
    """'ddp' or 'fsdp' in a worker of a multi-process run, else 'single'."""
    s = os.environ.get(STRATEGY_ENV, "single")
    return s if world_size() > 1 and s in ("ddp", "fsdp") else "single"


def sharded() -> bool:
    return strategy() == "fsdp"


def model_placement(on_cuda: bool) -> dict | None:
    """``device_map`` for from_pretrained: this rank's own GPU (DDP, one GPU), none with FSDP (it places
    and shards the weights itself; bitsandbytes quantizes onto the current device)."""
    if sharded():
        return None
    return {"": local_rank() if on_cuda else "cpu"}


def quantization_storage(dtype: Any) -> dict:
    """With FSDP the 4-bit weights are stored in the compute dtype, so FSDP can shard them like the
    other (16-bit) weights; one GPU keeps bitsandbytes' default uint8 storage."""
    return {"bnb_4bit_quant_storage": dtype} if sharded() else {}
