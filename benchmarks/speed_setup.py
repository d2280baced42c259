"""The speed benchmark's inputs: model folders of the measured shapes, and the rows.

Shapes: ``135m`` is the built-in SmolLM2-135M-Instruct with its real weights (converted once from
its GGUF file, as the studio does); ``1b`` and ``8b`` have the exact architecture of Llama-3.2-1B
and Llama-3.1-8B with random weights (speed and memory do not depend on weight values) and the
SmolLM2 tokenizer (token ids only index the larger embedding).

Rows: synthetic chat conversations with a realistic length spread (total tokens log-normal, median
~300, a long tail cut at the max length), rendered with the chat template and loss-masked by the
studio's own data pipeline, saved as JSONL of ``input_ids``/``labels`` that every case reads.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False),
    # (Llama-3 settings on Llama-2-13B's sizes) a shape too big for one capped GPU in multi_gpu.py; the
    # vocabulary of the tokenizer the benchmarks use (SmolLM2's), whose ids Llama-2's 32,000 rows lack
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                num_key_value_heads=40, head_dim=128, vocab_size=49152, tie_word_embeddings=False),
    # the built-in model's shape (SmolLM2-135M) with random weights: its step time without its GGUF file
    "135m-random": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                        num_key_value_heads=3, head_dim=64, vocab_size=49152, tie_word_embeddings=True),
    # for a dry run of a benchmark on a CPU: the code paths, not the numbers
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=49152, tie_word_embeddings=True),
}
_LLAMA3 = dict(rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu",
               attention_bias=False, mlp_bias=False)


def base_folder(gguf: str | None) -> Path:
    """The built-in model as an HF folder (converted once)."""
    from studio.models.sources import resolve_source
    return Path(resolve_source(gguf or "default"))


def model_folder(shape: str, work: Path, tokenizer_dir: Path) -> Path:
    """A random-weight folder for ``shape`` (made once, in bfloat16)."""
    folder = work / f"llama-{shape}"
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    from random_weights import build_bf16
    return build_bf16({"model_type": "llama", **SHAPES[shape], **_LLAMA3}, folder, tokenizer_dir)


def _words() -> list[str]:
    """Real English words (the demo FAQ's), so the tokenizer sees text of normal density."""
    from studio.paths import DEMO_DATA
    text = Path(DEMO_DATA).read_text(encoding="utf-8")
    return sorted(set(re.findall(r"[A-Za-z][a-z']+", text)))


def _text(rng: random.Random, words: list[str], n_words: int) -> str:
    out = []
    for i in range(n_words):
        w = rng.choice(words)
        out.append(w.capitalize() if i == 0 or out[-1].endswith(".") else w)
        if rng.random() < 0.08:
            out[-1] += "."
    return " ".join(out) + "."


def _write_chats(folder: Path, n: int, seed: int, lengths) -> Path:
    """``folder/chats.jsonl``: ``n`` conversations of real words, a system line, then a question and an answer of
    ``lengths(rng)`` = (question words, answer words)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = _words()
    chats = folder / "chats.jsonl"
    with open(chats, "w", encoding="utf-8") as f:
        for _ in range(n):
            q, a = lengths(rng)
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": _text(rng, words, q)},
                {"role": "assistant", "content": _text(rng, words, a)}]}) + "\n")
    return chats


def write_rows(folder: Path, tokenizer_dir: Path, n_train: int, n_eval: int, max_length: int,
               seed: int = 0) -> tuple[Path, Path]:
    """Rows through the studio's pipeline (chat template, assistant-only loss mask, cut at max length)."""
    from studio.config import DataConfig
    from studio.data.pipeline import prepare
    from studio.models.load import load_tokenizer
    from studio.config import ModelConfig

    train_path, eval_path = folder / "train.jsonl", folder / "eval.jsonl"
    if train_path.exists() and eval_path.exists():
        return train_path, eval_path

    def lengths(rng: random.Random) -> tuple[int, int]:
        # ~1.3 tokens a word; total tokens log-normal around 300 (sigma 0.75: 1% of rows > ~1,700).
        total_words = max(20, int(math.exp(rng.gauss(math.log(300 / 1.3), 0.75))))
        q = max(5, int(total_words * rng.uniform(0.15, 0.6)))
        return q, total_words - q
    chats = _write_chats(folder, n_train + n_eval, seed, lengths)
    tok = load_tokenizer(ModelConfig(source=str(tokenizer_dir)))
    data = prepare(DataConfig(file=str(chats), max_length=max_length, validation=n_eval), tok, seed)
    for path, rows in ((train_path, data.train), (eval_path, data.validation)):
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"input_ids": list(r.input_ids), "labels": list(r.labels)}) + "\n")
    return train_path, eval_path


def write_exact_rows(folder: Path, tokenizer_dir: Path, n_train: int, n_eval: int, tokens: int,
                     seed: int = 0) -> tuple[Path, Path]:
    """Rows of exactly ``tokens`` tokens each (``--row-tokens``): conversations longer than that, through the
    studio's pipeline with ``max_length=tokens`` (so each is cut to exactly that, its loss mask kept)."""
    train_path, eval_path = folder / "train.jsonl", folder / "eval.jsonl"
    if train_path.exists() and eval_path.exists():
        return train_path, eval_path
    # a word is at least one token: this many words is more than ``tokens`` tokens, whatever the text
    q = max(8, tokens // 20)
    chats = _write_chats(folder, n_train + n_eval, seed, lambda rng: (q, tokens + 16 - q))
    rows = exact_rows(chats, tokenizer_dir, n_eval, tokens, seed)
    for path, part in ((train_path, rows[n_eval:]), (eval_path, rows[:n_eval])):
        with open(path, "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r) + "\n")
    return train_path, eval_path


def exact_rows(chats: Path, tokenizer_dir: Path, n_eval: int, tokens: int, seed: int = 0) -> list[dict]:
    """``{"input_ids", "labels"}`` of every conversation of ``chats``, each exactly ``tokens`` long (the first
    ``n_eval`` the held-back ones); a conversation too short to reach it is refused."""
    from studio.config import DataConfig, ModelConfig
    from studio.data.pipeline import prepare
    from studio.models.load import load_tokenizer

    tok = load_tokenizer(ModelConfig(source=str(tokenizer_dir)))
    data = prepare(DataConfig(file=str(chats), max_length=tokens, validation=n_eval), tok, seed)
    rows = [{"input_ids": list(r.input_ids), "labels": list(r.labels)} for r in [*data.validation, *data.train]]
    short = [len(r["input_ids"]) for r in rows if len(r["input_ids"]) != tokens]
    if short or not rows:
        raise ValueError(f"rows of {short} tokens, not {tokens}: the conversations are too short")
    return rows


def row_stats(path: Path) -> dict:
    lengths = sorted(len(json.loads(line)["input_ids"]) for line in open(path))
    n = len(lengths)
    return {"rows": n, "median": lengths[n // 2], "p90": lengths[int(n * 0.9)], "max": lengths[-1],
            "mean": round(sum(lengths) / n, 1)}
