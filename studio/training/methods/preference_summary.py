"""What a preference run learned, in figures and one plain sentence, from its evaluation rows on the held-back
rows: the share of pairs where the chosen answer is preferred and the average margin, before training (the
evaluation the preference methods run at step 0) and at the end."""

from __future__ import annotations

from typing import Iterable

ACCURACY = "eval_rewards/accuracies"
MARGIN = "eval_rewards/margins"
# Methods whose reward is measured against the model as it started: before training every margin is 0.
AGAINST_START = ("dpo", "kto")


def preference_summary(metrics_rows: Iterable[dict], held_back: int = 0, method: str = "") -> dict:
    """``{pairs, accuracy_before, accuracy_after, margin_before, margin_after, sentence}`` from the first and
    the last evaluation rows that carry a margin; {} when there are none. ``held_back``: how many rows were
    evaluated (the accuracy becomes a count of them)."""
    rows = [r for r in metrics_rows if r.get("type") == "eval" and r.get(MARGIN) is not None]
    if not rows:
        return {}
    rows.sort(key=lambda r: r.get("step", 0))
    first, last = rows[0], rows[-1]
    out = {"pairs": held_back, "steps_before": first.get("step", 0), "steps_after": last.get("step", 0),
           "margin_before": round(first[MARGIN], 4), "margin_after": round(last[MARGIN], 4),
           "accuracy_before": first.get(ACCURACY), "accuracy_after": last.get(ACCURACY)}
    out["sentence"] = _sentence(out, method)
    return out


def _sentence(s: dict, method: str) -> str:
    start = "" if s["steps_before"] == 0 else f" (first measured at step {s['steps_before']})"
    margin = f"the average margin {'rose' if s['margin_after'] >= s['margin_before'] else 'fell'} from " \
             f"{s['margin_before']:.1f} to {s['margin_after']:.1f}{start}."
    rel = " measured against the model as it started," if method in AGAINST_START else ""
    if s["accuracy_after"] is None:        # KTO: no pairs, only labelled answers
        where = f"On {s['pairs']} held-back answers" if s["pairs"] else "On the held-back answers"
        return f"{where},{rel} {margin}"
    if s["pairs"] and method in AGAINST_START and s["steps_before"] == 0:
        # At step 0 the model is its own reference: every reward and margin is 0 and no pair counts as won, so a
        # "before" count would read as "it never preferred the right answer", which was not measured.
        now = round(s["accuracy_after"] * s["pairs"])
        return (f"On {s['pairs']} held-back pairs the model now favours the right answer more than it did when it "
                f"started on {now} of them;{rel} {margin}")
    if s["pairs"]:
        now, before = round(s["accuracy_after"] * s["pairs"]), round(s["accuracy_before"] * s["pairs"])
        return (f"On {s['pairs']} held-back pairs the model now prefers the right answer {now} times (it did "
                f"{before} before training);{rel} {margin}")
    return (f"On the held-back pairs the model now prefers the right answer {s['accuracy_after']:.0%} of the time "
            f"({s['accuracy_before']:.0%} before training);{rel} {margin}")
