"""What a run looks like, computed once for every front end (the widgets and the CLI).

Nothing here draws: the panels and the terminal only render what these functions return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["subject_of"]


def subject_of(params: Mapping[str, Any], width: int = 40) -> str:
    """The idea or the script's first words, on one line, at most ``width`` characters
    (cut at a word where it can be, then ``...``); ``""`` when there is neither."""
    subject = params.get("idea") or params.get("script") or ""
    text = " ".join(str(subject).split())
    if len(text) <= width:
        return text
    cut = text[: width - 3]
    if " " in cut and text[width - 3] != " ":
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "..."
