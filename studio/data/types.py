"""Plain data types shared by the data pipeline, the trainer and the UI."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    row: int          # 1-based row (JSONL: line number; CSV: data row; JSON array: element)
    message: str      # plain language, e.g. "the answer is empty"

    def to_dict(self) -> dict:
        return {"row": self.row, "message": self.message}


@dataclass
class Conversation:
    """One normalised example: messages with role system/user/assistant, ending with assistant.
    A plain-text row is a single message with role 'text' (whole sequence trained). ``tools`` are the
    function definitions of a tool-calling conversation (passed to the chat template)."""
    row: int
    messages: list[dict]
    tools: list[dict] | None = None


@dataclass
class EncodedRow:
    row: int
    input_ids: list[int]
    labels: list[int]         # -100 where no loss is taken
    text: str                 # the exact rendered training text
    truncated: bool = False


@dataclass
class DataReport:
    source: str
    format: str                                   # alpaca|sharegpt|messages|prompt_completion|text|mapping|unknown
    rows: int                                     # valid rows
    total: int                                    # rows read
    problems: list[Problem] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    suggested_mapping: dict = field(default_factory=dict)   # {"prompt": col, "answer": col, "system": col|""}
    template: str = ""                            # template name used for rendering ("model" or a fallback)
    preview: list[str] = field(default_factory=list)        # formatted text of the first rows
    token_stats: dict | None = None               # min/median/p95/max/over_max/max_length/lengths
    message: str = ""                             # a summary for people
    kind: str = ""                                # jsonl|json|csv|tsv|parquet|hub
    notes: list[str] = field(default_factory=list)          # e.g. "read as GB18030", rows that will be cut
    # per preview row: [[text, carries_loss], ...] pieces of the exact training text, for highlighting
    preview_marked: list[list[list]] = field(default_factory=list)
    encoding: str = ""                            # the text encoding the file was read with ('' for parquet/Hub)
    encoding_sample: str = ""                     # a short piece of the decoded text, to judge the encoding by
    cut: int = 0                                  # rows training will cut to the maximum length
    cut_rows: list = field(default_factory=list)  # [row, tokens] of each of them, named in ``notes``
    left_out_long: int = 0                        # rows training will leave out for their length
    system_prompt: dict = field(default_factory=dict)   # see studio.data.system_prompt.summarise
    shape: str = "conversation"                   # what the rows were read as: a key of DATA_SHAPES
    # preference pairs side by side: {"row", "prompt", "chosen", "rejected"}, each [[text, carries_loss], ...]
    preview_pairs: list[dict] = field(default_factory=list)
    labels: dict = field(default_factory=dict)    # KTO: {"desirable": n, "undesirable": m}

    def to_dict(self) -> dict:
        return {"source": self.source, "format": self.format, "rows": self.rows, "total": self.total,
                "problems": [p.to_dict() for p in self.problems], "columns": self.columns,
                "suggested_mapping": self.suggested_mapping, "template": self.template,
                "preview": self.preview, "token_stats": self.token_stats, "message": self.message,
                "kind": self.kind, "notes": self.notes, "preview_marked": self.preview_marked,
                "encoding": self.encoding, "encoding_sample": self.encoding_sample, "cut": self.cut,
                "cut_rows": self.cut_rows,
                "left_out_long": self.left_out_long, "system_prompt": self.system_prompt,
                "shape": self.shape, "preview_pairs": self.preview_pairs, "labels": self.labels}


@dataclass
class PreparedData:
    train: list[EncodedRow]
    validation: list[EncodedRow]
    report: DataReport
    template_name: str
    chat_template: str        # the Jinja template actually used; saved with the adapter and used in chat
    system_prompt: dict = field(default_factory=dict)   # the system prompt the rows used (recorded in the run)
    # Validation rows of one question and one answer, as {"prompt", "reference"}: asked after training.
    held_out: list[dict] = field(default_factory=list)


@dataclass
class EncodedPair:
    """A preference row tokenised for DPO, ORPO and SimPO (``training.method``): the prompt both answers share (the
    conversation rendered up to where the answer starts, generation prompt included), then each answer's tokens as
    the chat template ends an answer. The loss is taken on the answers only."""
    row: int
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    text: str                 # the prompt and the chosen answer: the exact rendered text
    rejected_text: str        # the prompt and the rejected answer
    truncated: bool = False


@dataclass
class EncodedLabelled:
    """A KTO row: a prompt and one answer marked desirable (``label`` True) or undesirable (False)."""
    row: int
    prompt_ids: list[int]
    completion_ids: list[int]
    label: bool
    text: str                 # the prompt and the answer: the exact rendered text
    truncated: bool = False


@dataclass
class EncodedPrompt:
    """A GRPO row: the prompt the model answers itself while training, and the reference answer its rewards are
    scored against (the row's own answer)."""
    row: int
    prompt_ids: list[int]
    prompt: str               # the rendered prompt text, generation prompt included
    messages: list[dict]      # the conversation up to the answer
    reference: str


# What a training method reads from the data (a method module's ``DATA``), and the row type prepare() makes of it.
DATA_SHAPES = {"conversation": EncodedRow, "pair": EncodedPair, "labelled": EncodedLabelled, "prompt": EncodedPrompt}
