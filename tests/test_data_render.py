"""Chat templates, fallbacks and the assistant-only loss mask, checked token by token."""

import itertools

import pytest
from tiny import tiny_tokenizer

from studio.data.render import (IGNORE, FALLBACKS, RenderError, encode, format_prompt, render, resolve_template)
from studio.data.types import Conversation
from studio.errors import DataError

SYSTEM = "You are a helpful assistant."
CONV = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What is the warranty?"},
    {"role": "assistant", "content": "Two years, and returns within 30 days."},
    {"role": "user", "content": "Hello, how are you today?"},
    {"role": "assistant", "content": "Happy to help!"},
]
# SmolLM2-Instruct's template (from its tokenizer_config.json): adds a default system prompt when none is given.
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
           "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
           "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# A Llama-3 style template: bos from the tokenizer, content trimmed, no {% generation %} tags.
TRIMMING = ("{{ bos_token }}{% for m in messages %}{{ '[' + m['role'] + ']\n' + m['content'] | trim + '<|im_end|>' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '[assistant]\n' }}{% endif %}")
NO_SYSTEM = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
             "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def tok_plain():
    return tiny_tokenizer(with_template=False)


def trained_pieces(tokenizer, row):
    """Decoded runs of consecutive tokens that carry loss, and of those that do not."""
    on, off = [], []
    for carries, group in itertools.groupby(zip(row.input_ids, row.labels), key=lambda p: p[1] != IGNORE):
        ids = [i for i, _ in group]
        (on if carries else off).append(tokenizer.decode(ids))
    return on, off


def check_alignment(row):
    assert len(row.input_ids) == len(row.labels)
    assert all(lab in (IGNORE, tid) for tid, lab in zip(row.input_ids, row.labels))


def test_resolve_template_choices(tok, tok_plain):
    assert resolve_template(tok, "auto") == ("model", tok.chat_template)
    assert resolve_template(tok, "model") == ("model", tok.chat_template)
    assert resolve_template(tok_plain, "auto") == ("chatml", FALLBACKS["chatml"])
    for name in ("chatml", "alpaca", "human_assistant"):
        assert resolve_template(tok, name) == (name, FALLBACKS[name])
    with pytest.raises(DataError, match="no chat template"):
        resolve_template(tok_plain, "model")
    with pytest.raises(DataError, match="Unknown template"):
        resolve_template(tok, "vicuna")


@pytest.mark.parametrize("template, end", [("model", "<|im_end|>"), ("chatml", "<|im_end|>")])
def test_mask_is_exactly_the_answers_chatml(tok, template, end):
    _, jinja = resolve_template(tok, template)
    row = encode(tok, Conversation(7, CONV), jinja, max_length=512)
    check_alignment(row)
    on, off = trained_pieces(tok, row)
    assert on == [CONV[2]["content"] + end, CONV[4]["content"] + end]
    untrained = "".join(off)
    for m in CONV[:2] + CONV[3:4]:
        assert m["content"] in untrained          # system and user text carry no loss
    assert row.row == 7 and row.text == tok.apply_chat_template(CONV, tokenize=False, chat_template=jinja)
    assert row.input_ids == tok(row.text, add_special_tokens=False)["input_ids"]


def test_fallback_on_a_tokenizer_without_template_learns_to_stop(tok_plain):
    name, jinja = resolve_template(tok_plain, "auto")
    row = encode(tok_plain, Conversation(1, CONV), jinja, max_length=512)
    on, _ = trained_pieces(tok_plain, row)
    eos = tok_plain.eos_token
    assert on == [CONV[2]["content"] + "<|im_end|>" + eos, CONV[4]["content"] + "<|im_end|>" + eos]
    assert row.input_ids.count(tok_plain.eos_token_id) == 2
    assert all(row.labels[i] == tok_plain.eos_token_id for i, t in enumerate(row.input_ids)
               if t == tok_plain.eos_token_id)


@pytest.mark.parametrize("name, user_marker, prompt_end, lead", [
    ("alpaca", "### Instruction:\nWhat is the warranty?", "### Response:\n", ""),
    ("human_assistant", "### Human: What is the warranty?", "### Assistant:", " "),
])
def test_fallback_templates_render_and_mask(tok_plain, name, user_marker, prompt_end, lead):
    _, jinja = resolve_template(tok_plain, name)
    text = render(tok_plain, jinja, CONV)
    assert text.startswith(SYSTEM) and user_marker in text
    prompt = format_prompt(tok_plain, jinja, CONV[:2])
    assert prompt.endswith(prompt_end) and text.startswith(prompt)
    row = encode(tok_plain, Conversation(1, CONV), jinja, max_length=512)
    check_alignment(row)
    on, _ = trained_pieces(tok_plain, row)
    eos = tok_plain.eos_token
    assert on == [lead + CONV[2]["content"] + eos, lead + CONV[4]["content"] + eos]


def test_alpaca_without_system_uses_the_classic_preamble(tok_plain):
    text = render(tok_plain, FALLBACKS["alpaca"], CONV[1:3])
    assert text.startswith("Below is an instruction") and "### Response:\nTwo years" in text


def test_format_prompt_matches_training_text(tok):
    _, jinja = resolve_template(tok, "auto")
    prompt = format_prompt(tok, jinja, CONV[:4])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert render(tok, jinja, CONV).startswith(prompt)


def test_template_with_default_system_prompt(tok):
    row = encode(tok, Conversation(1, CONV[1:]), SMOLLM2, max_length=512)
    on, off = trained_pieces(tok, row)
    assert on == [CONV[2]["content"] + "<|im_end|>", CONV[4]["content"] + "<|im_end|>"]
    assert "named SmolLM" in off[0]               # the default system prompt is seen, not trained


def test_trimming_template_without_generation_tags(tok):
    conv = [dict(m) for m in CONV]
    conv[2]["content"] = "  Two years, and returns within 30 days.  "
    row = encode(tok, Conversation(1, conv), TRIMMING, max_length=512)
    on, _ = trained_pieces(tok, row)
    assert on == ["Two years, and returns within 30 days.<|im_end|>", "Happy to help!<|im_end|>"]


def test_slow_tokenizer_path_gives_the_same_mask(tok):
    class Slow:        # the same tokenizer, seen as one without offsets
        is_fast = False

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, *a, **kw):
            return self.inner(*a, **kw)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    fast = encode(tok, Conversation(1, CONV), tok.chat_template, 512)
    slow = encode(Slow(tok), Conversation(1, CONV), tok.chat_template, 512)
    assert slow.input_ids == fast.input_ids and slow.labels == fast.labels


def test_template_that_refuses_is_a_render_error(tok):
    with pytest.raises(RenderError, match="System role not supported"):
        encode(tok, Conversation(1, CONV), NO_SYSTEM, 512)
    row = encode(tok, Conversation(1, CONV[1:3]), NO_SYSTEM, 512)
    on, _ = trained_pieces(tok, row)
    assert on == [" " + CONV[2]["content"]]    # no end-of-turn in this template: the answer alone


def test_train_on_all_and_plain_text(tok):
    row = encode(tok, Conversation(1, CONV), tok.chat_template, 512, train_on="all")
    assert row.labels == row.input_ids
    text_row = encode(tok, Conversation(2, [{"role": "text", "content": "The quick brown fox."}]), tok.chat_template, 512)
    assert text_row.labels == text_row.input_ids
    assert text_row.input_ids[-1] == tok.eos_token_id and text_row.text.endswith(tok.eos_token)


def test_truncate_keeps_mask_aligned_and_drop_drops(tok):
    full = encode(tok, Conversation(1, CONV), tok.chat_template, 10_000)
    n = len(full.input_ids)
    first_trained = next(i for i, lab in enumerate(full.labels) if lab != IGNORE)
    cut = first_trained + 3
    row = encode(tok, Conversation(1, CONV), tok.chat_template, cut, overlong="truncate")
    assert row.truncated and len(row.input_ids) == cut < n
    assert row.input_ids == full.input_ids[:cut] and row.labels == full.labels[:cut]
    assert full.text.startswith(row.text) and len(row.text) < len(full.text)
    assert encode(tok, Conversation(1, CONV), tok.chat_template, cut, overlong="drop") is None
    # cut before any answer token: nothing left to learn, so the row is dropped
    assert encode(tok, Conversation(1, CONV), tok.chat_template, first_trained, overlong="truncate") is None
    assert not encode(tok, Conversation(1, CONV), tok.chat_template, n, overlong="drop").truncated


def test_render_without_tokenizer_for_preview():
    text = render(None, FALLBACKS["chatml"], CONV[1:3])
    assert text == ("<|im_start|>user\nWhat is the warranty?<|im_end|>\n"
                    "<|im_start|>assistant\nTwo years, and returns within 30 days.<|im_end|>\n")
