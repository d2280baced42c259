"""``studio export``: take a run out of the studio.

    studio export RUN_DIR --to adapter               a zip that plain peft loads (base named by its Hub id)
    studio export RUN_DIR --to merged [--dtype D]    a standard transformers folder, adapter merged in 16-bit
    studio export RUN_DIR --to gguf [--dtype Q4_K_M] [--check]   one .gguf file for llama.cpp / Ollama / LM Studio
                                                     (Q4_K_M, Q5_K_M, Q6_K, Q8_0, F16, F32) and its Modelfile;
                                                     --check asks it the evaluation questions in llama.cpp
    studio export RUN_DIR --to adapter --push you/my-adapter [--token T] [--public]   to the Hugging Face Hub

Exports go to ``<workspace>/exports/`` (or --output), are written beside the destination and renamed
when complete, and never replace an existing file or folder. Ctrl-C or SIGTERM stops the export and
removes its unfinished ``.partial`` file or folder (nothing else is touched) before exiting 130 / 143.
Exit codes: 0 written (and, with --check, answering like the trained model), 1 written but the check
found it answers clearly worse, 2 refused, 130/143 stopped.
"""

from __future__ import annotations

import sys

from ..errors import StudioError
from ..export.gguf import PICK, TYPES, label
from ..export.run_export import KINDS
from . import report
from .stops import Stopped, StopSignals


def add_parser(sub):
    p = sub.add_parser("export", help="export a run: adapter zip, merged model or GGUF",
                       description="Export a run's adapter as a zip, merged into its base as a transformers "
                                   "folder, or as a GGUF file for llama.cpp and Ollama.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")
    p.add_argument("--to", choices=KINDS, required=True, help="what to export")
    p.add_argument("--dtype", default="auto",
                   help="merged: auto | bfloat16 | float16 | float32 (auto: bf16 on GPUs that have it, fp32 on "
                        f"a CPU); gguf: {' | '.join(label(t) for t in TYPES)} (default F16; the K-quants need "
                        "llama-cpp-python: pip install \"finetune-studio[gguf]\"). " + PICK.replace("%", "%%"))
    p.add_argument("--check", action="store_true",
                   help="gguf: after exporting, load the file in llama.cpp, ask it the run's evaluation questions "
                        "(or --prompts) with the training system prompt, greedy, and compare with the trained "
                        "model's answers; exit 1 when it answers clearly worse (needs llama-cpp-python)")
    p.add_argument("--prompts", help="with --check: a JSONL/CSV file of questions and reference answers (default: the "
                                     "run's last evaluation, else the held-out demo questions)")
    p.add_argument("--output", help="where to write it (default: the studio's exports folder)")
    p.add_argument("--original-base", action="store_true",
                   help="merged, QLoRA runs only: merge into the original weights instead of the dequantized "
                        "4-bit ones the adapter learned against (for comparison)")
    p.add_argument("--push", metavar="REPO_ID", help="adapter or merged: upload to this Hugging Face Hub repository "
                                                     "(your-name/model-name) instead of writing a local export")
    p.add_argument("--token", help="with --push: a Hub token with write access (default: HF_TOKEN or the saved login)")
    p.add_argument("--public", action="store_true", help="with --push: make the repository public (default: private)")
    return p


def run(args) -> int:
    with StopSignals():
        try:
            return _export(args)
        except Stopped as stop:
            print("\nStopped: nothing was exported (the unfinished file was removed); the run is unchanged.",
                  file=sys.stderr)
            return stop.code


def _export(args) -> int:
    from ..export.run_export import export_run
    from ..runs import find_run

    args.run_dir = str(find_run(args.run_dir))   # a folder, or the name of a run in the workspace

    if args.push:
        from ..export.hub import push_run
        try:
            url = push_run(args.run_dir, args.to, args.push, args.token, private=not args.public)
        except StudioError as e:
            report(e)
            return 2
        print(f"Pushed: {url}")
        return 0
    if args.check and args.to not in ("gguf", "gguf-lora"):
        print("--check is for GGUF exports (--to gguf).", file=sys.stderr)
        return 2
    try:
        if args.check:             # said before minutes of merging: the check needs llama.cpp
            from ..export.quantize import llama_cpp
            llama_cpp()
        prompts = None
        if args.prompts:
            from ..evaluation import load_prompts
            prompts = load_prompts(args.prompts)
        path = export_run(args.run_dir, args.to, args.dtype, args.output, original=args.original_base)
    except StudioError as e:
        report(e)
        return 2
    if args.to not in ("gguf", "gguf-lora"):
        print(f"Written: {path}")
        return 0
    from ..export.gguf import modelfile_lines
    from ..export.modelfile import modelfile_path
    print(f"Written: {path} ({_size(path.stat().st_size)})")
    if args.to == "gguf":
        print(PICK)
    print(f"Modelfile for Ollama: {modelfile_path(path)}  (`ollama create my-model -f {modelfile_path(path)}`):")
    for line in modelfile_lines(path):
        print("    " + line)
    if not args.check:
        return 0
    from ..device import DeviceLock
    from ..export_check import check_gguf, check_lines
    try:
        result = check_gguf(args.run_dir, path, prompts, device_lock=DeviceLock())
    except StudioError as e:
        report(e)
        return 2
    for line in check_lines(result):
        print(line)
    return 0 if result.passed else 1


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
