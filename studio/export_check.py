"""The export check: the exported GGUF asked the evaluation questions in llama.cpp itself, scored, and
set beside the trained model's own answers.

    result = check_gguf(run_dir, gguf_path, prompts=None, device_lock=lock)
    result.rows        # [{"prompt", "reference", "trained", "export", "trained_score", "export_score", "same", "similarity"}]
    result.passed      # False when the export answers clearly worse (see ``verdict``)
    print(check_table(result))

The file is asked the way llama.cpp-based programs ask it: the prompt made by the chat template stored
in the GGUF (through llama-cpp-python's Jinja2 formatter, as LM Studio and ``create_chat_completion``
do), tokenised by llama.cpp's tokenizer from the file, with the system prompt and the stop tokens of the
Modelfile written beside it. So a wrong tokenizer, template, system prompt or stop token in the export
shows up here. Decoding is greedy with the run's repetition penalty applied as transformers applies it
(every token of the prompt and of the answer so far), so a faithful f16 export gives the trained model's
own answers token for token, and a quantized one answers close to them.

The trained model's answers are the run's last evaluation (``eval.jsonl``) when it asked the same
questions greedily with the same length, else a fresh evaluation (``studio.evaluation.evaluate``).

Verdict (``verdict``): the export fails when it gets clearly fewer facts right than the trained model
(more than ``max(1, 10%)`` of the scored questions fewer), or when its answers are on average far from the
trained model's own (chrF similarity under ``MIN_SIMILARITY``): an answer in another style or language,
or one that never stops.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ExportError

MIN_SIMILARITY = 40.0        # mean chrF (0-100) of the export's answers to the trained model's own answers


@dataclass
class CheckResult:
    gguf: str
    rows: list[dict] = field(default_factory=list)
    trained: dict = field(default_factory=dict)      # scoring.totals
    export: dict = field(default_factory=dict)
    same: int = 0
    similarity: float | None = None
    passed: bool = True
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _trained_rows(run_dir: Path, prompts: list[dict], gen, device_lock, progress) -> list[dict]:
    """The trained model's greedy answers to ``prompts``: eval.jsonl when it asked exactly these, else fresh."""
    from .evaluation import evaluate

    try:
        lines = [json.loads(x) for x in (run_dir / "eval.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    except (OSError, ValueError):
        lines = []
    asked = [(r.get("prompt"), r.get("reference", "")) for r in lines]
    same_settings = all((r.get("generation") or {}).get("temperature", 1) == 0 and
                        (r.get("generation") or {}).get("max_new_tokens") == gen.max_new_tokens and
                        (r.get("generation") or {}).get("repetition_penalty") == gen.repetition_penalty for r in lines)
    if lines and same_settings and asked == [(p["prompt"], p.get("reference", "")) for p in prompts]:
        progress("The trained model's answers: its last evaluation (eval.jsonl).")
        return [{"prompt": r["prompt"], "reference": r.get("reference", ""), "answer": r.get("answer", ""),
                 "score": r.get("score")} for r in lines]
    progress(f"Asking the trained model the {len(prompts)} questions (greedy)...")
    name = run_dir.name
    out = []
    for row in evaluate([run_dir], prompts, device_lock=device_lock, generation=gen):
        out.append({"prompt": row["prompt"], "reference": row["reference"], "answer": row[name],
                    "score": row["scores"].get(name)})
    return out


class GGUFAnswerer:
    """Greedy answers from a GGUF file in llama.cpp (CPU), asked as llama.cpp-based programs ask."""

    def __init__(self, gguf_path: Path, system_prompt: str, stop: list[str], repetition_penalty: float,
                 max_new_tokens: int, n_ctx: int = 2048, threads: int | None = None, lora_path: Path | None = None):
        from .export.quantize import llama_cpp
        lib = llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.lib = lib
        # lora_path: a LoRA adapter GGUF applied to the model file (llama.cpp's --lora)
        self.llm = lib.Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=threads or max(1, os.cpu_count() or 1),
                             n_gpu_layers=0, verbose=False, logits_all=False,
                             lora_path=str(lora_path) if lora_path else None)
        meta = self.llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise ExportError("The GGUF file {path} has no chat template, so llama.cpp cannot format a conversation.",
                              code="export.check_no_template", path=str(gguf_path))
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        text = self.llm._model.token_get_text
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=text(eos) if eos != -1 else "",
                                             bos_token=text(bos) if bos != -1 else "")
        self.system_prompt = system_prompt
        self.stop = [s for s in stop if s]
        self.penalty = repetition_penalty
        self.max_new_tokens = max_new_tokens
        self.vocab = lib.llama_model_get_vocab(self.llm.model)
        self.n_vocab = self.llm.n_vocab()

    def prompt_tokens(self, question: str) -> list[int]:
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + [
            {"role": "user", "content": question}]
        text = self.formatter(messages=messages).prompt
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def answer(self, question: str) -> str:
        import numpy as np

        tokens = self.prompt_tokens(question)
        room = self.llm.n_ctx() - len(tokens)
        self.llm.reset()
        self.llm.eval(tokens)
        seen = set(tokens)
        out: list[int] = []
        text = ""
        for _ in range(max(0, min(self.max_new_tokens, room))):
            ptr = self.lib.llama_get_logits_ith(self.llm.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
            if self.penalty != 1.0 and seen:          # transformers' RepetitionPenaltyLogitsProcessor
                idx = np.fromiter(seen, dtype=np.int64)
                vals = logits[idx]
                logits[idx] = np.where(vals < 0, vals * self.penalty, vals / self.penalty)
            token = int(np.argmax(logits))
            if self.lib.llama_vocab_is_eog(self.vocab, token):
                break
            out.append(token)
            seen.add(token)
            text = self.llm.detokenize(out, special=True).decode("utf-8", errors="replace")
            if any(s in text for s in self.stop):
                break
            self.llm.eval([token])
        cut = [text.find(s) for s in self.stop if s in text]
        return (text[:min(cut)] if cut else text).strip()

    def close(self) -> None:
        self.llm.close()


def asking_settings(run_dir: Path, gguf_path: Path) -> tuple[str, list[str], Any]:
    """(system prompt, stop texts, greedy GenerationConfig): the Modelfile's, beside the file, where there
    is one (what Ollama will be told), else the run's own."""
    from .config import GenerationConfig
    from .errors import ConfigError
    from .data.system_prompt import for_run
    from .export.modelfile import modelfile_path, read_modelfile
    from .runs import RunFolder

    try:
        gen = RunFolder(run_dir).config().generation
    except (ConfigError, OSError):
        gen = GenerationConfig()
    system, stop = for_run(run_dir).get("system_prompt", ""), []
    mf = modelfile_path(gguf_path)
    if mf.is_file():
        info = read_modelfile(mf)
        system, stop = info["system"], info["stop"]
        p = info["parameters"]
        gen = dataclasses.replace(gen, repetition_penalty=float(p.get("repeat_penalty", gen.repetition_penalty)),
                                  max_new_tokens=int(p.get("num_predict", gen.max_new_tokens)))
    return system, stop, dataclasses.replace(gen, temperature=0.0)


def check_gguf(run_dir: str | Path, gguf_path: str | Path, prompts: list[dict] | None = None, *, device_lock,
               progress: Callable[[str], None] = print, threads: int | None = None) -> CheckResult:
    """Ask the GGUF file and the trained model the same questions and compare (see the module's text)."""
    from .scoring import score_answer, shared_facts, similarity, totals

    run_dir, gguf_path = Path(run_dir), Path(gguf_path)
    if not gguf_path.is_file():
        raise ExportError("There is no GGUF file at {path}.", code="export.check_no_file", path=str(gguf_path))
    prompts = prompts if prompts is not None else _default_prompts(run_dir)
    system, stop, gen = asking_settings(run_dir, gguf_path)
    trained = _trained_rows(run_dir, prompts, gen, device_lock, progress)
    model_path, lora = adapter_base(gguf_path)
    progress(f"Loading {gguf_path.name} in llama.cpp (CPU)...")
    asker = GGUFAnswerer(model_path, system, stop, gen.repetition_penalty, gen.max_new_tokens, threads=threads,
                         lora_path=lora)
    try:
        style = shared_facts([p.get("reference", "") for p in prompts])
        result = CheckResult(gguf=str(gguf_path))
        for n, (item, mine) in enumerate(zip(prompts, trained), 1):
            answer = asker.answer(item["prompt"])
            reference = item.get("reference", "")
            score = score_answer(answer, reference, item["prompt"], style) if reference.strip() else None
            result.rows.append({"prompt": item["prompt"], "reference": reference, "trained": mine["answer"],
                                "export": answer, "trained_score": mine["score"], "export_score": score,
                                "same": answer == mine["answer"],
                                "similarity": similarity(answer, mine["answer"]) if mine["answer"] else None})
            progress(f"[{n}/{len(prompts)}] asked the export.")
    finally:
        asker.close()
    result.trained = totals([r["trained_score"] for r in result.rows])
    result.export = totals([r["export_score"] for r in result.rows])
    verdict(result)
    return result


def adapter_base(gguf_path: Path) -> tuple[Path, Path | None]:
    """(model file, adapter file or None): an adapter GGUF is asked on the base its Modelfile names (FROM)."""
    from .export.gguf_lora import is_adapter
    from .export.modelfile import modelfile_path, read_modelfile

    if not is_adapter(gguf_path):
        return gguf_path, None
    mf = modelfile_path(gguf_path)
    base = read_modelfile(mf).get("from") if mf.is_file() else None
    base_path = (gguf_path.parent / base) if base else None
    if base_path is None or not base_path.is_file():
        raise ExportError("{path} is a LoRA adapter; its base GGUF (named by FROM in {modelfile}) is not beside it.",
                          code="export.check_no_base", path=str(gguf_path), modelfile=str(mf))
    return base_path, gguf_path


def _default_prompts(run_dir: Path) -> list[dict]:
    """The questions of the run's last evaluation (eval.jsonl), else the held-out demo questions."""
    from .evaluation import load_prompts
    try:
        lines = (run_dir / "eval.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(x) for x in lines if x.strip()]
    except (OSError, ValueError):
        rows = []
    if rows:
        return [{"prompt": r.get("prompt", ""), "reference": r.get("reference", "")} for r in rows]
    return load_prompts(None)


def verdict(result: CheckResult) -> CheckResult:
    rows = result.rows
    result.same = sum(1 for r in rows if r["same"])
    sims = [r["similarity"] for r in rows if r["similarity"] is not None]
    result.similarity = round(sum(sims) / len(sims), 1) if sims else None
    scored = result.trained.get("scored", 0)
    margin = max(1, math.floor(0.1 * scored))
    fewer = result.trained.get("right", 0) - result.export.get("right", 0)
    result.reasons = []
    if scored and fewer > margin:
        result.reasons.append(f"the export states {result.export.get('right', 0)} of {scored} answers' facts right, "
                              f"the trained model {result.trained.get('right', 0)} (more than {margin} fewer)")
    if result.similarity is not None and result.similarity < MIN_SIMILARITY:
        result.reasons.append(f"its answers are far from the trained model's own (similarity {result.similarity:g} "
                              f"of 100, under {MIN_SIMILARITY:g})")
    result.passed = not result.reasons
    return result


def _mark(score: dict | None) -> str:
    if not score or score.get("right") is None:
        return "-"
    return "yes" if score["right"] else "no"


def check_lines(result: CheckResult, width: int = 48) -> list[str]:
    """The table and the verdict as plain text lines (the CLI prints them)."""
    def cut(s: str) -> str:
        s = " ".join((s or "").split())
        return s if len(s) <= width else s[: width - 1] + "…"

    lines = [f"{'#':>2}  {'trained':7}  {'export':6}  {'same':4}  {'sim':>5}  question / export answer"]
    for n, r in enumerate(result.rows, 1):
        sim = "" if r["similarity"] is None else f"{r['similarity']:.0f}"
        flag = "" if _mark(r["trained_score"]) == _mark(r["export_score"]) else "  <- differs"
        lines.append(f"{n:>2}  {_mark(r['trained_score']):7}  {_mark(r['export_score']):6}  "
                     f"{'yes' if r['same'] else 'no':4}  {sim:>5}  {cut(r['prompt'])}{flag}")
        lines.append(f"{'':>36}-> {cut(r['export'])}")
    t, e = result.trained, result.export
    lines.append(f"Facts right: trained model {t.get('right', 0)} of {t.get('scored', 0)}, export "
                 f"{e.get('right', 0)} of {e.get('scored', 0)}; same answer {result.same} of {len(result.rows)}; "
                 f"mean similarity to the trained answers {result.similarity if result.similarity is not None else '-'}.")
    if result.passed:
        lines.append("Export check passed: the exported file answers like the trained model.")
    else:
        lines.append("Export check FAILED: " + "; ".join(result.reasons) + ".")
    return lines
