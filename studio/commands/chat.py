"""``studio chat``: talk to a fine-tuned run, or compare it with its untuned base.

    studio chat --run runs/demo --prompt "How much is the Pro?"              one answer
    studio chat --run runs/demo --prompt "How much is the Pro?" --compare    base: ... / tuned: ...
    studio chat --run runs/demo [--compare]                                  interactive (/reset, /quit)

The base answer comes from the same loaded model with the adapter switched off. Generation settings
default to the run's config (its ``generation`` section); the flags override them. The system prompt
defaults to the one the run's data used (so the question is asked the way training asked it);
``--system TEXT`` sends another, ``--system ""`` none.
Ctrl-C or SIGTERM during ``--prompt`` ends the answer where it is (the generation thread is stopped and
waited for) and exits 130 / 143; in the interactive chat Ctrl-C interrupts the answer, SIGTERM quits.
Exit codes: 0 fine, 1 the run cannot be loaded or answered, 2 a bad option, 130/143 stopped.
"""

from __future__ import annotations

import signal
import sys

from ..errors import StudioError
from . import report
from .stops import Stopped, StopSignals


def add_parser(sub):
    p = sub.add_parser("chat", help="chat with a fine-tuned run (optionally side by side with its base)",
                       description="Chat with the adapter of a run folder. With --compare every prompt is "
                                   "answered by the untuned base and by the tuned model.")
    p.add_argument("--run", required=True, help="the run folder (the one `studio train` printed)")
    p.add_argument("--prompt", help="ask this one question and exit (otherwise: interactive)")
    p.add_argument("--compare", action="store_true", help="answer as the base model too, labelled base: and tuned:")
    p.add_argument("--system", default=None,
                   help="the system prompt to send (default: the one the run was trained with; \"\" for none)")
    p.add_argument("--max-new-tokens", type=int, help="longest answer in tokens")
    p.add_argument("--temperature", type=float, help="0 = always the likeliest word (default from the run)")
    return p


def _generation(args, run_dir):
    """The run's generation settings with the flags applied, checked as training checks them (a number
    that is not finite, a temperature below 0, no tokens to answer with: ConfigError naming the key)."""
    from ..config import GenerationConfig, StudioConfig, merge
    from ..config_checks import check_generation
    from ..errors import ConfigError
    try:
        gen = StudioConfig.load(f"{run_dir}/config.yaml").generation
    except ConfigError:
        gen = GenerationConfig()
    given = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}
    gen = merge(StudioConfig(generation=gen), {"generation": {k: v for k, v in given.items() if v is not None}}).generation
    check_generation(gen)
    return gen


def _say(label: str, pieces) -> str:
    """Print a streamed answer after its label; returns the whole answer."""
    sys.stdout.write(f"{label}: ")
    sys.stdout.flush()
    text = ""
    for piece in pieces:
        if not text:
            piece = piece.lstrip()
        text += piece
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return text.strip()


def _answer(chat, prompt: str, compare: bool, hist_base: list, hist_tuned: list) -> None:
    if compare:
        base = _say("base", chat.stream(hist_base, prompt, use_adapter=False))
        hist_base += [{"role": "user", "content": prompt}, {"role": "assistant", "content": base}]
        label = "tuned"
    else:
        label = "tuned" if chat.has_adapter else "model"
    tuned = _say(label, chat.stream(hist_tuned, prompt, use_adapter=True))
    hist_tuned += [{"role": "user", "content": prompt}, {"role": "assistant", "content": tuned}]


def _interactive(chat, compare: bool, signals: StopSignals) -> None:
    print("Type a message; /reset forgets the conversation, /quit (or Ctrl-D) leaves.", file=sys.stderr)
    hist_base: list = []
    hist_tuned: list = []
    while True:
        try:
            prompt = input("you: ").strip()
        except EOFError:
            print()
            return
        except Stopped as stop:
            print()
            if stop.signo != signal.SIGINT:
                raise
            raise _Leave() from None
        if prompt in ("/quit", "/exit"):
            return
        if prompt == "/reset":
            hist_base.clear()
            hist_tuned.clear()
            print("(conversation forgotten)", file=sys.stderr)
            continue
        if not prompt:
            continue
        try:
            _answer(chat, prompt, compare, hist_base, hist_tuned)
        except Stopped as stop:
            if stop.signo != signal.SIGINT:
                raise                          # SIGTERM: quit
            print("\n(answer interrupted)", file=sys.stderr)
            signals.handled()


def _quiet_libraries() -> None:
    """Keep the terminal for the conversation: no loading bars or library deprecation notes."""
    import warnings

    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def run(args) -> int:
    from ..errors import ConfigError

    from ..runs import find_run
    _quiet_libraries()
    with StopSignals() as signals:
        try:
            return _chat(args, signals)
        except _Leave:
            return 0
        except Stopped as stop:
            said = "the answer was cut off there" if args.prompt is not None else "the chat ended"
            print(f"\nStopped: {said}; nothing was saved.", file=sys.stderr)
            return stop.code
        except StudioError as e:    # a run without adapter, a model that cannot load, a busy device...
            report(e)
            return 2 if isinstance(e, ConfigError) else 1


class _Leave(Exception):
    """Ctrl-C at the interactive prompt: leave the chat (exit 0), as Ctrl-D does."""


def _chat(args, signals: StopSignals) -> int:
    from ..device import DeviceLock
    from ..errors import ChatError
    from ..inference import ChatSession

    from ..runs import find_run

    args.run = str(find_run(args.run))        # a folder, or the name of a run in the workspace
    generation = _generation(args, args.run)
    print(f"Loading the run in {args.run} ...", file=sys.stderr)
    chat = ChatSession.from_run(args.run, generation=generation, device_lock=DeviceLock(), system_prompt=args.system)
    if chat.system_prompt:
        origin = "as given with --system" if args.system is not None else "the one the run was trained with"
        print(f"System prompt ({origin}): {chat.system_prompt}", file=sys.stderr)
    if args.prompt is not None:
        if not args.prompt.strip():
            raise ChatError("The prompt is empty; write a question after --prompt.", code="chat.empty_prompt_cli")
        _answer(chat, args.prompt, args.compare, [], [])
    else:
        _interactive(chat, args.compare, signals)
    return 0
