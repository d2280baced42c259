"""The data pipeline: read a file, detect its shape, validate rows, render with a chat template,
mask the loss, measure token lengths and split. ``pipeline.py`` is the entry point."""

from .types import Conversation, DataReport, EncodedRow, PreparedData, Problem

__all__ = ["Conversation", "DataReport", "EncodedRow", "PreparedData", "Problem"]
