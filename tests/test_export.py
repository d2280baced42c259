"""Export on a tiny Llama folder: the adapter zip loads with plain peft by its recorded base, the merged
folder loads with plain transformers and answers like base + adapter, exports never overwrite."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest
import torch

from test_training_job import make_cfg, write_data

PROMPTS = ["What is the warranty?", "Does it ship to Canada?"]


def train_run(tmp_path: Path, tiny_dir: Path, name: str = "run", quantization: str = "none", steps: int = 15) -> Path:
    from studio.training import TrainingJob
    cfg = make_cfg(write_data(tmp_path, n=8), max_steps=steps)
    cfg.model.source = str(tiny_dir)
    cfg.model.quantization = quantization
    job = TrainingJob(cfg, tmp_path / name, keep_model=False)
    job.run_sync()
    assert job.state == "done", job.message
    return job.run_dir


def greedy(model, tok, template, prompt, n=12):
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], chat_template=template,
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
        logits = model(ids).logits
    return out[0, ids.shape[1]:].tolist(), logits


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir):
    return train_run(tmp_path_factory.mktemp("export"), tiny_dir)


def test_merged_folder_answers_like_base_plus_adapter(run_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.export.merge import export_merged
    from studio.runs import RunFolder

    folder = export_merged(run_dir, tmp_path / "merged", "float32", progress=lambda m: None)
    assert not (tmp_path / "merged.partial").exists()
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (folder / name).is_file(), name
    merged = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    tok = AutoTokenizer.from_pretrained(folder)
    template = (folder / "chat_template.jinja").read_text()

    cfg = RunFolder(run_dir).config()
    base = AutoModelForCausalLM.from_pretrained(cfg.model.source).eval()
    tuned = PeftModel.from_pretrained(base, str(run_dir / "adapter")).eval()
    for prompt in PROMPTS:
        want_tokens, want_logits = greedy(tuned, tok, template, prompt)
        got_tokens, got_logits = greedy(merged, tok, template, prompt)
        assert got_tokens == want_tokens
        torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-4)
        with tuned.disable_adapter():
            base_tokens, base_logits = greedy(tuned, tok, template, prompt)
        assert (base_logits - want_logits).abs().max() > 1e-2      # the adapter changed something


def test_export_never_overwrites_and_checks_disk(run_dir, tmp_path, monkeypatch):
    import shutil

    from studio.export import files
    from studio.errors import ExportError
    from studio.export.merge import export_merged

    dest = tmp_path / "merged"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_merged(run_dir, dest, "float32", progress=lambda m: None)
    assert (dest / "keep.txt").read_text() == "mine"

    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**6, 10**6 - 10, 10))
    with pytest.raises(ExportError, match="Not enough free disk space"):
        export_merged(run_dir, tmp_path / "other", "float32", progress=lambda m: None)
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.partial").exists()


def test_adapter_zip_names_the_hub_base_and_loads_with_plain_peft(run_dir, tmp_path, monkeypatch):
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    from studio.export.adapter import DEFAULT_HUB_ID, base_hub_id, export_adapter_zip

    assert base_hub_id("default") == DEFAULT_HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_hub_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    # A local folder whose config records its Hub origin is exported under that id.
    cfg_file = Path(json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    zip_path = export_adapter_zip(run_dir, tmp_path / "a.zip")
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "x")
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "adapter/tokenizer.json",
                 "adapter/chat_template.jinja", "adapter/base_model.json"):
        assert name in names
    record = json.loads((tmp_path / "x" / "adapter" / "base_model.json").read_text())
    assert record["local_path"] == str(cfg_file)
    # Elsewhere: plain peft, the base from wherever the config says (here the same tiny folder).
    peft_cfg = PeftConfig.from_pretrained(tmp_path / "x" / "adapter")
    assert peft_cfg.base_model_name_or_path == record["local_path"]      # no Hub id known for this folder
    base = AutoModelForCausalLM.from_pretrained(record["local_path"])
    PeftModel.from_pretrained(base, str(tmp_path / "x" / "adapter"))
    with pytest.raises(Exception, match="already exists"):
        export_adapter_zip(run_dir, tmp_path / "a.zip")


def test_adapter_of_the_default_model_names_its_hub_id(run_dir, tmp_path):
    import shutil

    from studio.config import StudioConfig
    from studio.export.adapter import export_adapter_zip

    other = tmp_path / "default-run"
    shutil.copytree(run_dir, other)
    cfg = StudioConfig.load(other / "config.yaml")
    cfg.model.source = "default"
    cfg.save(other / "config.yaml")
    zip_path = export_adapter_zip(other, tmp_path / "d.zip")
    with zipfile.ZipFile(zip_path) as z:
        config = json.loads(z.read("adapter/adapter_config.json"))
        record = json.loads(z.read("adapter/base_model.json"))
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert record["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and record["local_path"]


def test_cli_export_writes_each_kind_and_refuses_plainly(run_dir, tmp_path, studio_home, capsys):
    from studio.cli import main

    assert main(["export", str(run_dir), "--to", "adapter"]) == 0
    zip_path = studio_home / "exports" / f"{run_dir.name}-adapter.zip"
    assert zip_path.is_file() and f"Written: {zip_path}" in capsys.readouterr().out
    assert main(["export", str(run_dir), "--to", "adapter"]) == 2          # never over the earlier one
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--to", "merged", "--output", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["export", str(run_dir), "--to", "gguf", "--dtype", "q8_0", "--output", str(tmp_path / "m.gguf")]) == 0
    out = capsys.readouterr().out
    assert "    FROM ./m.gguf\n" in out and "ollama create" in out and "Q4_K_M" in out      # the "which one" line
    assert [f"    {line}" for line in (tmp_path / "m.Modelfile").read_text().splitlines()] == [
        line for line in out.splitlines() if line.startswith("    ")]          # printed = written
    assert main(["export", str(tmp_path / "nowhere"), "--to", "merged"]) == 2
    err = capsys.readouterr().err
    assert "is not a run folder" in err and "Traceback" not in err


def test_qlora_run_merges_into_the_dequantized_4bit_weights(tmp_path, tiny_dir):
    """The adapter learned against NF4-rounded weights: the merge uses those (dequantized), not the originals."""
    pytest.importorskip("bitsandbytes")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio import models
    from studio.export.merge import export_merged
    from studio.runs import RunFolder

    run_dir = train_run(tmp_path, tiny_dir, "qlora", quantization="4bit-nf4", steps=6)
    folder = export_merged(run_dir, tmp_path / "merged", "float32", progress=lambda m: None)
    original = export_merged(run_dir, tmp_path / "original", "float32", original=True, progress=lambda m: None)
    merged = AutoModelForCausalLM.from_pretrained(folder).eval()
    merged_orig = AutoModelForCausalLM.from_pretrained(original).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    template = (folder / "chat_template.jinja").read_text()
    # In float32, as the merged folders were written: on a CPU with native bfloat16 the run's own settings load it
    # in bfloat16, whose rounding alone can change a greedy token.
    model_cfg = dataclasses.replace(RunFolder(run_dir).config().model, compute_dtype="float32")
    base4 = models.load_model(model_cfg, for_training=False)
    tuned4 = PeftModel.from_pretrained(base4, str(run_dir / "adapter")).eval()
    want_tokens, want = greedy(tuned4, tok, template, PROMPTS[0])
    got_tokens, got = greedy(merged, tok, template, PROMPTS[0])
    _, got_orig = greedy(merged_orig, tok, template, PROMPTS[0])
    assert got_tokens == want_tokens
    torch.testing.assert_close(got, want, rtol=0, atol=1e-2)      # bitsandbytes' CPU 4-bit kernel rounds a little
    # Merging into the original weights gives another model (further from what was trained).
    assert (got_orig - want).abs().max() > 10 * (got - want).abs().max()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())


def test_push_without_a_token_or_offline_says_so_plainly(run_dir, monkeypatch, capsys):
    from studio.cli import main

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(run_dir.parent / "no-hf-home"))     # no saved login either
    assert main(["export", str(run_dir), "--to", "adapter", "--push", "me/my-adapter"]) == 2
    err = capsys.readouterr().err
    assert "No Hugging Face token" in err and "HF_TOKEN" in err and "Traceback" not in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["export", str(run_dir), "--to", "adapter", "--push", "me/my-adapter", "--token", "hf_x"]) == 2
    assert "offline" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--to", "gguf", "--push", "me/x", "--token", "hf_x"]) == 2
    assert "Only the adapter or the merged model" in capsys.readouterr().err


def test_one_table_of_exports_for_the_cli_the_app_and_its_api():
    """`studio export --to`, the Runs tab's choices and what Services.export_run reads back come from
    run_export's one table (the tab's labels through the language table, the GGUF types as llama.cpp names them)."""
    import argparse

    from studio.commands.export import add_parser
    from studio.export.gguf import TYPES
    from studio.export.run_export import KINDS, choices, parse_choice
    from studio.ui.i18n import _words
    from studio.ui.tab_runs import export_choices

    to = next(a for a in add_parser(argparse.ArgumentParser().add_subparsers())._actions if a.dest == "to")
    assert tuple(to.choices) == KINDS
    assert [v for _, v in export_choices()] == list(choices())
    assert {parse_choice(c) for c in choices()} == ({("merged", "auto"), ("gguf-lora", "auto")}
                                                    | {("gguf", t) for t in TYPES if t != "f32"})
    assert parse_choice("adapter") == ("adapter", "auto")
    en, zh = _words(export_choices(), "en"), _words(export_choices(), "zh")
    assert ("GGUF F16", "gguf-f16") in en and ("GGUF Q4_K_M", "gguf-q4_k_m") in zh
    assert en[0] == ("merged model (transformers)", "merged") and zh[0][0] == "合并后的模型（transformers）"
