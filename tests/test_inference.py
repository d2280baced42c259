"""Chat with a run: base vs tuned from one loaded model, streaming, history, the run's own template."""

from __future__ import annotations

import time

import pytest
from transformers import LlamaForCausalLM

from studio.config import GenerationConfig
from test_training_job import PAIRS, make_cfg, write_data

GEN = GenerationConfig(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_dir):
    """A run trained from the tiny model folder, loaded the way the CLI does it (no injection)."""
    from studio.training import TrainingJob

    tmp = tmp_path_factory.mktemp("inference")
    cfg = make_cfg(write_data(tmp, pairs=PAIRS[:2]), max_steps=30, learning_rate=0.01)
    cfg.lora.r, cfg.lora.alpha = 16, 32
    cfg.model.source = str(tiny_dir)
    job = TrainingJob(cfg, tmp / "run").start()
    assert job.join(120) and job.state == "done", job.message
    return job


class Counter:
    def __init__(self, monkeypatch):
        self.n = 0
        original = LlamaForCausalLM.__init__

        def counting(model, *a, **kw):
            self.n += 1
            original(model, *a, **kw)
        monkeypatch.setattr(LlamaForCausalLM, "__init__", counting)


def test_compare_answers_from_one_base_and_the_base_is_the_untuned_model(trained_run, tiny_dir, monkeypatch):
    from studio.inference import ChatSession
    from studio.device import DeviceLock
    from transformers import AutoModelForCausalLM

    count = Counter(monkeypatch)
    chat = ChatSession.from_run(trained_run.run_dir, generation=GEN, device_lock=DeviceLock())
    assert count.n == 1                                   # one model object: the base under the adapter
    question = "What is the warranty?"
    base, tuned = chat.compare(question)
    assert count.n == 1                                   # comparing loads nothing more
    assert base != tuned

    plain = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    reference = ChatSession(plain, chat.tokenizer, chat.chat_template, GEN, device_lock=DeviceLock())
    assert reference.reply([], question) == base
    # The tuned side learned the training answer's start.
    assert tuned.startswith("Two years")


def test_from_job_uses_the_model_in_memory(trained_run, monkeypatch):
    from studio.inference import ChatSession
    from studio.device import DeviceLock

    count = Counter(monkeypatch)
    chat = ChatSession.from_job(trained_run, generation=GEN, device_lock=DeviceLock())
    assert count.n == 0 and chat.model is trained_run.model
    assert chat.chat_template == trained_run.data.chat_template
    assert chat.reply([], "What is the warranty?").startswith("Two years")


def test_for_run_takes_the_jobs_model_only_for_the_jobs_own_run(trained_run, tmp_path, monkeypatch):
    import shutil

    from studio.device import DeviceLock
    from studio.inference import ChatSession

    count = Counter(monkeypatch)
    lock = DeviceLock()
    same = ChatSession.for_run(str(trained_run.run_dir) + "/", device_lock=lock, job=trained_run)
    assert count.n == 0 and same.model is trained_run.model and same.device_lock is lock
    copy = shutil.copytree(trained_run.run_dir, tmp_path / "copy")     # another run: loaded from its folder
    other = ChatSession.for_run(copy, device_lock=lock, job=trained_run)
    assert count.n == 1 and other.model is not trained_run.model


def test_a_session_without_the_device_lock_is_refused(trained_run):
    from studio.inference import ChatSession

    with pytest.raises(TypeError, match="device lock"):
        ChatSession(trained_run.model, trained_run.tokenizer, trained_run.data.chat_template, device_lock=None)


def test_stream_gives_pieces_and_each_side_keeps_its_history(trained_run):
    from studio.inference import ChatSession
    from studio.device import DeviceLock

    chat = ChatSession.from_job(trained_run, generation=GEN, device_lock=DeviceLock(), system_prompt="Be brief.")
    pieces = list(chat.stream([], "What is the warranty?"))
    assert len(pieces) > 1 and "".join(pieces).strip() == chat.reply([], "What is the warranty?")
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}]
    text = chat.prompt_text(history, "And the price?")
    assert text.index("Be brief.") < text.index("Hello") < text.index("Hi there") < text.index("And the price?")
    assert chat.prompt_text([("Hello", "Hi there")], "And the price?") == text


def test_leaving_a_stream_early_frees_the_device(trained_run):
    from studio.inference import ChatSession
    from studio.device import DeviceLock

    lock = DeviceLock()
    chat = ChatSession.from_job(trained_run, generation=GenerationConfig(max_new_tokens=200), device_lock=lock)
    stream = chat.stream([], "What is the warranty?")
    next(stream)
    stream.close()
    deadline = time.time() + 10
    while lock.locked() and time.time() < deadline:
        time.sleep(0.01)
    assert not lock.locked()


def test_a_run_without_adapter_gives_a_plain_message(tmp_path):
    from studio.device import DeviceLock
    from studio.inference import ChatSession
    from studio.errors import ChatError

    with pytest.raises(ChatError, match="no run folder"):
        ChatSession.from_run(tmp_path / "nowhere", device_lock=DeviceLock())
    run = tmp_path / "run"
    run.mkdir()
    make_cfg("demo").save(run / "config.yaml")
    (run / "state.json").write_text('{"state": "training"}')
    with pytest.raises(ChatError, match="no adapter yet.*'training'"):
        ChatSession.from_run(run, device_lock=DeviceLock())
    (run / "state.json").write_text('{"state": "failed"}')      # it never will have one: said so, no "wait"
    with pytest.raises(ChatError, match="failed before it saved an adapter"):
        ChatSession.from_run(run, device_lock=DeviceLock())
