"""Markdown tables, as the reports and the command lines print them."""


def markdown_table(header, rows, align=None):
    """A Markdown table as text, without a trailing newline.

    Args:
        header: the column titles.
        rows: sequences of cells (formatted with `str`), one per row.
        align: one letter per column, "l" (left, the default) or "r" (right).
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(header)} columns.")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
