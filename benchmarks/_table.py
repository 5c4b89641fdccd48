"""Printing the benchmarks' results as aligned text tables."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = (1, 2, 3, 4)
) -> None:
    """Print ``header``, a rule and ``rows``; the columns in ``right`` align right."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    for cells in rows:
        print(line(cells))
