"""Tiny models and tokenizers built in code, so tests need no network and no GPU.

``tiny_tokenizer()`` is a byte-level BPE trained on a few sentences (vocab ~400) with a chatml
chat template; ``tiny_model()`` a 2-layer Llama of a few hundred thousand parameters.
``tiny_model_dir(tmp)`` saves both as a normal Hugging Face folder, usable as a model source.
``loss_and_grads(model)`` runs one fixed batch forward and backward, for tests that compare two ways of training.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Happy to help! The Aurora kettle costs 79 dollars and ships to Canada.",
    "What is the warranty? Two years, and returns within 30 days.",
    "You are a helpful assistant. Hello, how are you today?",
    "The quick brown fox jumps over the lazy dog 0123456789.",
    "instruction input output system user assistant human gpt conversations",
]


def tiny_tokenizer(with_template: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 5, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>" if with_template else "<|endoftext|>",
                                   pad_token="<|endoftext|>", bos_token=None)
    if with_template:
        fast.chat_template = CHATML
    return fast


def tiny_model(tokenizer=None, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      bos_token_id=None, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def loss_and_grads(model):
    """(loss, {name: gradient}) of one forward and backward of a fixed random batch (2 x 48 token ids); only the
    trainable parameters that received a gradient are in the dict."""
    import torch
    torch.manual_seed(2)
    ids = torch.randint(3, 300, (2, 48))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()
                               if p.requires_grad and p.grad is not None}


def tiny_model_dir(folder: Path, with_template: bool = True) -> Path:
    """Save a tiny model + tokenizer as a Hugging Face folder and return it."""
    folder = Path(folder)
    tok = tiny_tokenizer(with_template)
    model = tiny_model(tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_sentencepiece_tokenizer():
    """A Llama 2 / Mistral style tokenizer: SentencePiece-style BPE ('▁' for spaces, byte fallback to
    <0x..> pieces), <unk> <s> </s> first, trained on the same few sentences, with the chatml template."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    bpe.train_from_iterator(_CORPUS * 5, trainer=trainers.BpeTrainer(vocab_size=300, show_progress=False))
    trained = json.loads(bpe.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for piece, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = LlamaTokenizer(vocab=vocab, merges=merges)
    tok.pad_token = "</s>"
    tok.chat_template = CHATML
    return tok


def tiny_sentencepiece_model_dir(folder: Path) -> Path:
    folder = Path(folder)
    tok = tiny_sentencepiece_tokenizer()
    tiny_model(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
