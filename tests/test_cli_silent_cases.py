"""``studio train`` and ``studio export`` said nothing where they changed or dropped what was asked (issue 18);
through the real entry point (``studio.cli.main``) on the tiny model."""

from __future__ import annotations

from pathlib import Path

from studio.cli import main
from test_cli_train_chat import write_config
from test_training_job import write_data

DATA = Path(__file__).parent / "fixtures" / "data"


def test_train_names_the_rows_it_leaves_out(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, DATA / "empty-answers.jsonl")
    assert main(["train", "--config", str(config), "--max-steps", "1", "data.validation=0",
                 "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "10 training rows" in out
    assert "Note: 2 of 12 rows are left out (row 3: the answer ('output') is empty; row 7:" in out
    assert "studio data" in out


def test_train_refuses_more_validation_rows_than_there_are(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=20))
    assert main(["train", "--config", str(config), "data.validation=1000", "--output", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "data.validation asks for 1000 validation rows, but the data has only 20 usable rows" in err


def test_epochs_without_extend_decides_the_length(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=20))     # max_steps: 30 in the file
    assert main(["train", "--config", str(config), "--epochs", "0.01", "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "Note: training for 0.01 epochs as asked; the 30 steps (training.max_steps)" in out
    assert "steps          1 of 1" in out
    assert main(["train", "--config", str(config), "--epochs", "2", "--max-steps", "3",
                 "--output", str(tmp_path / "two")]) == 2
    assert "Both training.epochs (2.0) and training.max_steps (3) were given" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()


def test_export_refuses_a_gguf_type_it_cannot_write(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=8))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "2", "--output", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "model.gguf"
    assert main(["export", str(run), "--to", "gguf", "--dtype", "iq2_xxs", "--output", str(out)]) == 2
    printed = capsys.readouterr()
    assert "Unknown GGUF type 'iq2_xxs'; choose one of Q4_K_M, Q5_K_M, Q6_K, Q8_0, F16, F32" in printed.err
    assert "llama-quantize" in printed.err and "Writing" not in printed.out
    assert not out.exists()


def test_a_k_quant_without_llama_cpp_says_what_to_install(tmp_path, tiny_dir, studio_home, capsys, monkeypatch):
    """Q4_K_M needs llama-cpp-python: without it the export is refused before any merging, naming the command."""
    import sys
    monkeypatch.setitem(sys.modules, "llama_cpp", None)          # import llama_cpp -> ImportError
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=8))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "2", "--output", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "model.gguf"
    assert main(["export", str(run), "--to", "gguf", "--dtype", "Q4_K_M", "--output", str(out)]) == 2
    printed = capsys.readouterr()
    assert "needs llama.cpp's Python package (llama-cpp-python)" in printed.err
    assert 'pip install "finetune-studio[gguf]"' in printed.err and "Merging" not in printed.out
    assert "Traceback" not in printed.err and not out.exists() and not list(tmp_path.glob("model*"))
    assert main(["export", str(run), "--to", "gguf", "--check", "--output", str(out)]) == 2     # the check too
    assert "llama-cpp-python" in capsys.readouterr().err and not out.exists()
