"""release() must free what bitsandbytes' process-wide optimizer registry holds of a run.

With an 8-bit optimizer the transformers Trainer registers every embedding module in
``GlobalOptimManager``; before this was reset, each QLoRA run left its float32 embedding matrix on
the GPU (measured on an H100, docs/BENCHMARKS.md).
"""

import gc
import weakref

import torch

from studio.config import StudioConfig, merge
from studio.training.job import TrainingJob


def test_release_forgets_modules_registered_with_bitsandbytes(tmp_path):
    from bitsandbytes.optim.optimizer import GlobalOptimManager

    embedding = torch.nn.Embedding(50, 8)
    GlobalOptimManager.get_instance().register_module_override(embedding, "weight", {"optim_bits": 32})
    alive = weakref.ref(embedding)
    del embedding
    gc.collect()
    assert alive() is not None  # the registry keeps it, as it does for the Trainer's embeddings

    cfg = merge(StudioConfig(), {"training": {"output_dir": str(tmp_path / "run")}})
    TrainingJob(cfg).release()
    assert alive() is None
