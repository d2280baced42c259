"""Base GGUF + LoRA adapter GGUF against the merged f16 GGUF, in llama.cpp, on the held-out demo questions.

    python scripts/gguf_lora_check.py RUN_DIR [OUT_DIR]      (needs llama-cpp-python)

Exports the run twice (gguf-lora: the adapter with its f16 base; gguf f16: merged), asks both the eight
held-out questions greedily as the export check asks (the Modelfile's system prompt and stops, the run's
repetition penalty) and prints how many answers are the same, token for token. README's export section
quotes the figure for the built-in model.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(run_dir: str, out: str | None = None) -> int:
    from studio.evaluation import load_prompts
    from studio.export.gguf_lora import base_name
    from studio.export.run_export import export_run
    from studio.export_check import GGUFAnswerer, asking_settings

    folder = Path(out or tempfile.mkdtemp(prefix="gguf-lora-"))
    name = Path(run_dir).name
    started = time.time()
    adapter = export_run(run_dir, "gguf-lora", "f16", folder / f"{name}-LoRA-F16.gguf", progress=print)
    merged = export_run(run_dir, "gguf", "f16", folder / f"{name}-F16.gguf", progress=print)
    base = adapter.with_name(base_name(run_dir))
    print(f"Exported in {time.time() - started:.0f} s: {adapter.stat().st_size / 1e6:.1f} MB adapter, "
          f"{base.stat().st_size / 1e6:.1f} MB base, {merged.stat().st_size / 1e6:.1f} MB merged.")
    system, stop, gen = asking_settings(Path(run_dir), merged)
    prompts = load_prompts(None)
    answer = {}
    for label, model, lora in (("merged", merged, None), ("base+adapter", base, adapter)):
        asker = GGUFAnswerer(model, system, stop, gen.repetition_penalty, gen.max_new_tokens, lora_path=lora)
        try:
            answer[label] = [asker.answer(p["prompt"]) for p in prompts]
        finally:
            asker.close()
    same = sum(a == b for a, b in zip(answer["merged"], answer["base+adapter"]))
    for p, a, b in zip(prompts, answer["merged"], answer["base+adapter"]):
        print(("same " if a == b else "DIFF ") + p["prompt"][:60] + "\n   merged:  " + a[:100] +
              ("" if a == b else "\n   adapter: " + b[:100]))
    print(f"Same greedy answer: {same} of {len(prompts)}")
    return 0 if same == len(prompts) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
