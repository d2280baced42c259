"""GGUF exports in llama.cpp itself (llama-cpp-python, CPU), on a tiny Llama that has learned eight answers:
each type (the K-quants made by llama.cpp's own quantizer) loads and answers, the f16 file answers token for
token like the trained model, the Modelfile carries the system prompt, the stop tokens and the run's
settings, and the export check passes a good export and fails one with a wrong chat template or tokenizer.

Skipped when llama-cpp-python is not installed (``pip install "finetune-studio[gguf]"``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from test_training_job import PAIRS, make_cfg  # noqa: E402

SYSTEM = "You are the Aurora helper."


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory, tiny_dir):
    """A run whose adapter states the eight answers (80 steps: measured 8 of 8 right, 8 s on a CPU)."""
    from studio.training import TrainingJob

    root = tmp_path_factory.mktemp("learned")
    data = root / "faq.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for q, a in PAIRS:
            f.write(json.dumps({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    cfg = make_cfg(data, max_steps=80)
    cfg.model.source = str(tiny_dir)
    cfg.data.score_prompts = "none"
    cfg.generation.max_new_tokens = 24
    job = TrainingJob(cfg, root / "run", keep_model=False)
    job.run_sync()
    assert job.state == "done", job.message
    return job.run_dir


@pytest.fixture(scope="module")
def prompts():
    return [{"prompt": q, "reference": a} for q, a in PAIRS]


@pytest.fixture(scope="module")
def trained_answers(learned_run, prompts):
    from studio.device import DeviceLock
    from studio.evaluation import evaluate
    rows = list(evaluate([learned_run], prompts, device_lock=DeviceLock()))
    assert sum(r["scores"]["run"]["right"] for r in rows) == len(PAIRS)      # it has learned them
    return [r["run"] for r in rows]


def _export(run, folder: Path, kind: str) -> Path:
    from studio.export.run_export import export_run
    return export_run(run, "gguf", kind, folder / f"run-{kind.upper()}.gguf", progress=lambda m: None)


@pytest.mark.parametrize("kind", ["q4_k_m", "q5_k_m", "q6_k", "q8_0", "f16"])
def test_each_type_loads_in_llama_cpp_and_answers(learned_run, trained_answers, tmp_path, kind):
    import gguf

    from studio.export_check import GGUFAnswerer, asking_settings

    path = _export(learned_run, tmp_path, kind)
    assert path.name == f"run-{kind.upper()}.gguf" and not list(tmp_path.glob("*.partial"))
    file_type = int(gguf.GGUFReader(str(path)).fields["general.file_type"].parts[-1][0])
    assert file_type == {"f16": 1, "q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}[kind]
    system, stop, gen = asking_settings(learned_run, path)
    asker = GGUFAnswerer(path, system, stop, gen.repetition_penalty, gen.max_new_tokens, threads=1)
    try:
        answers = [asker.answer(q) for q, _ in PAIRS]
    finally:
        asker.close()
    assert all(answers)
    if kind == "f16":
        assert answers == trained_answers              # llama.cpp gives the trained model's own answers
    else:
        assert sum(a == b for a, b in zip(answers, trained_answers)) >= 6, answers


def test_k_quants_are_smaller_than_f16(learned_run, tmp_path):
    sizes = {k: _export(learned_run, tmp_path, k).stat().st_size for k in ("f16", "q8_0", "q4_k_m")}
    assert sizes["q4_k_m"] < sizes["q8_0"] < sizes["f16"]


def test_modelfile_carries_the_system_prompt_stop_tokens_and_settings(learned_run, tmp_path, capsys):
    from studio.cli import main
    from studio.config import StudioConfig
    from studio.export.modelfile import read_modelfile

    out = tmp_path / "run-Q4_K_M.gguf"
    assert main(["export", str(learned_run), "--to", "gguf", "--dtype", "Q4_K_M", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    modelfile = tmp_path / "run-Q4_K_M.Modelfile"
    text = modelfile.read_text()
    # The lines printed are the file's lines.
    assert [f"    {x}" for x in text.splitlines()] == [x for x in printed.splitlines() if x.startswith("    ")]
    assert "Written:" in printed and " MB)" in printed and "Which one? Q4_K_M" in printed
    info = read_modelfile(modelfile)
    gen = StudioConfig.load(learned_run / "config.yaml").generation
    assert "FROM ./run-Q4_K_M.gguf" in text.splitlines()
    assert info["system"] == SYSTEM
    assert info["stop"][0] == "<|im_end|>" and "<|im_start|>" in info["stop"]
    assert info["parameters"] == {"temperature": "0", "top_p": f"{gen.top_p:g}",
                                  "repeat_penalty": f"{gen.repetition_penalty:g}", "repeat_last_n": "-1",
                                  "num_predict": "24"}
    assert info["template"].startswith("{{- range .Messages }}<|im_start|>{{ .Role }}")


def test_export_check_passes_a_good_export(learned_run, trained_answers, prompts, tmp_path):
    from studio.device import DeviceLock
    from studio.export_check import check_gguf, check_lines

    path = _export(learned_run, tmp_path, "q8_0")
    result = check_gguf(learned_run, path, prompts, device_lock=DeviceLock(), progress=lambda m: None, threads=1)
    assert result.passed, check_lines(result)
    assert result.trained == result.export and result.export["right"] == len(PAIRS)
    assert [r["trained"] for r in result.rows] == trained_answers
    assert check_lines(result)[-1].startswith("Export check passed")


def _broken_export(run, path: Path, template: str | None = None) -> Path:
    """A GGUF of the run's merged model (with ``template`` instead of its own), its Modelfile beside."""
    import torch

    from studio.export.gguf import write_gguf
    from studio.export.merge import merged_model
    from studio.export.modelfile import write_modelfile

    model, tok, good = merged_model(run, torch.float32)
    write_gguf(model, tok, template or good, path, "f16", progress=lambda m: None)
    write_modelfile(path, run, tok, good)
    return path


LLAMA2_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                   "{% elif m['role'] == 'system' %}<<SYS>>{{ m['content'] }}<</SYS>>{% endif %}{% endfor %}")


def test_export_check_fails_a_wrong_template_or_tokenizer(learned_run, prompts, tmp_path, monkeypatch):
    from studio.device import DeviceLock
    from studio.export_check import check_gguf, check_lines

    wrong_template = _broken_export(learned_run, tmp_path / "template.gguf", template=LLAMA2_TEMPLATE)
    result = check_gguf(learned_run, wrong_template, prompts, device_lock=DeviceLock(), progress=lambda m: None,
                        threads=1)
    assert not result.passed and result.export["right"] < result.trained["right"]
    assert check_lines(result)[-1].startswith("Export check FAILED")

    # A wrong tokenizer: the merges in another order, so llama.cpp splits every prompt into other tokens.
    from studio.export import gguf as gguf_export
    real = gguf_export._merges
    monkeypatch.setattr(gguf_export, "_merges", lambda model: list(reversed(real(model))))
    wrong_merges = _broken_export(learned_run, tmp_path / "merges.gguf")
    result = check_gguf(learned_run, wrong_merges, prompts, device_lock=DeviceLock(), progress=lambda m: None,
                        threads=1)
    assert not result.passed, check_lines(result)


def test_cli_check_exit_codes(learned_run, prompts, tmp_path, capsys, monkeypatch):
    from studio.cli import main
    from studio.export import merge

    file = tmp_path / "p.jsonl"
    file.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    ok = tmp_path / "ok.gguf"
    assert main(["export", str(learned_run), "--to", "gguf", "--dtype", "f16", "--check", "--prompts", str(file),
                 "--output", str(ok)]) == 0
    out = capsys.readouterr().out
    assert "Export check passed" in out and "Facts right: trained model 8 of 8, export 8 of 8" in out

    real = merge.merged_model
    monkeypatch.setattr(merge, "merged_model", lambda *a, **k: (*real(*a, **k)[:2], LLAMA2_TEMPLATE))
    bad = tmp_path / "bad.gguf"
    assert main(["export", str(learned_run), "--to", "gguf", "--dtype", "f16", "--check", "--prompts", str(file),
                 "--output", str(bad)]) == 1
    assert "Export check FAILED" in capsys.readouterr().out and bad.is_file()
