"""Taking a run out of the studio: the adapter (zip), a merged 16-bit model, a GGUF file.

``export_run(run_dir, to, ...)`` in ``run_export.py`` is what the CLI (`studio export`) and the Runs tab call.
"""
