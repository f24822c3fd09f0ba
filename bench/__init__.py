"""Benchmarks: scripts that print markdown tables (``python -m bench.<name> --help``); figures and
how to read them in docs/PERFORMANCE.md."""

from __future__ import annotations

from typing import Any


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    """A markdown table after a blank line (so that it renders under a caption); a column whose
    title starts with '>' is right-aligned (numbers)."""
    titles = [column.lstrip(">") for column in columns]
    right = [column.startswith(">") for column in columns]
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(text) for text in [title] + [row[i] for row in cells]) for i, title in enumerate(titles)]

    def line(texts: list[str]) -> str:
        padded = (t.rjust(w) if r else t.ljust(w) for t, w, r in zip(texts, widths, right, strict=True))
        return "| " + " | ".join(padded) + " |"

    print()
    print(line(titles))
    print("|" + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right, strict=True)) + "|")
    for row in cells:
        print(line(row))
