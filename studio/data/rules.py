"""Rules every shape of data shares (conversations, preference pairs, labelled answers, prompts): how many
rows the validation split holds back, the words for a row left out for its length, and the error when
nothing usable is left. ``pipeline`` and ``shaped`` both read them, so the check and training agree."""

from __future__ import annotations

from ..config import DataConfig
from ..errors import DataError
from .types import Problem


def validation_count(n: int, validation: float) -> int:
    """Rows to hold back: a fraction (<1) or a count (>=1); always leaves at least one training row."""
    if validation <= 0 or n < 2:
        return 0
    k = int(validation) if validation >= 1 else max(1, round(n * validation))
    return min(k, n - 1)


def check_validation(validation: float, rows: int) -> None:
    """Refuse a validation count that would leave nothing (or a single row) to train on."""
    if validation >= 1 and int(validation) >= rows:
        # Granted as asked, it would leave a single row to train on, without a word.
        raise DataError("data.validation asks for {asked} validation rows, but the data has only {rows} usable "
                        "row{s}; at least one must be left to train on.", code="data.validation_too_many",
                        asked=int(validation), rows=rows, s="" if rows == 1 else "s")


def too_long(row: int, n: int, cfg: DataConfig) -> Problem:
    """The problem of a row training leaves out for its length (the same words in the check and in training)."""
    why = ("it will be left out" if cfg.overlong == "drop"
           else "nothing of the answer is left after cutting, so it is left out")
    return Problem(row, f"the row is {n} tokens, longer than the maximum of {cfg.max_length}; {why}")


def why_none(problems: list[Problem]) -> str:
    return nothing_usable(problems).message.removeprefix("No usable training rows: ")


def nothing_usable(problems: list[Problem]) -> DataError:
    if not problems:
        return DataError("No usable training rows: the data holds no examples.", code="data.no_examples")
    shown = "; ".join(f"row {p.row}: {p.message}" for p in problems[:3])
    return DataError("No usable training rows: every row has a problem. {shown}{more}.", code="data.all_rows_bad",
                     shown=shown, more=f" (and {len(problems) - 3} more)" if len(problems) > 3 else "",
                     extra=max(0, len(problems) - 3))
