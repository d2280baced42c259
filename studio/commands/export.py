"""``studio export``: take a run out of the studio.

    studio export RUN_DIR --to adapter               a zip that plain peft loads (base named by its Hub id)
    studio export RUN_DIR --to merged [--dtype D]    a standard transformers folder, adapter merged in 16-bit
    studio export RUN_DIR --to gguf [--dtype q8_0]   one .gguf file for llama.cpp / Ollama (f16 or q8_0)
    studio export RUN_DIR --to adapter --push you/my-adapter [--token T] [--public]   to the Hugging Face Hub

Exports go to ``<workspace>/exports/`` (or --output), are written beside the destination and renamed
when complete, and never replace an existing file or folder. Ctrl-C or SIGTERM stops the export and
removes its unfinished ``.partial`` file or folder (nothing else is touched) before exiting 130 / 143.
Exit codes: 0 written, 2 refused, 130/143 stopped.
"""

from __future__ import annotations

import sys

from ..errors import StudioError
from . import report
from .stops import Stopped, StopSignals


def add_parser(sub):
    p = sub.add_parser("export", help="export a run: adapter zip, merged model or GGUF",
                       description="Export a run's adapter as a zip, merged into its base as a transformers "
                                   "folder, or as a GGUF file for llama.cpp and Ollama.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")
    p.add_argument("--to", choices=("adapter", "merged", "gguf"), required=True, help="what to export")
    p.add_argument("--dtype", default="auto",
                   help="merged: auto | bfloat16 | float16 | float32 (auto: bf16 on GPUs that have it, fp32 on "
                        "a CPU); gguf: f16 | q8_0 | f32 (default f16; other types such as q4_k_m: convert the f16 "
                        "file with llama.cpp's llama-quantize)")
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
    dtype = args.dtype
    if args.to == "gguf" and dtype == "auto":
        dtype = "f16"
    try:
        path = export_run(args.run_dir, args.to, dtype, args.output, original=args.original_base)
    except StudioError as e:
        report(e)
        return 2
    print(f"Written: {path}")
    if args.to == "gguf":
        from ..export.gguf import modelfile_lines
        print("To use it with Ollama, save these lines as a file named Modelfile and run "
              "`ollama create my-model -f Modelfile`:")
        for line in modelfile_lines(path):
            print("    " + line)
    return 0
