"""Token text for display: visible whitespace (␣ ↵ ⇥ ⏎) and clipping, shared by every figure.

:func:`visible` is the one home of the display form: the CLI's tables, the terminal grid, PNG and HTML
figures all call it. Results and ``--json`` carry tokens as decoded strings (``" very"``), never this
form.
"""

from __future__ import annotations

import html

VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "⏎"}


def visible(token: str) -> str:
    """Spaces, newlines, tabs and carriage returns drawn as ␣ ↵ ⇥ ⏎; other control characters as ␀-style
    escapes; the empty token as ∅."""
    out = []
    for ch in token:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
        elif ord(ch) < 32:
            out.append(chr(0x2400 + ord(ch)))
        else:
            out.append(ch)
    return "".join(out) or "∅"


def clip(text: str, width: int) -> str:
    """At most ``width`` characters, with … when cut."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def html_token(token: str) -> str:
    return html.escape(visible(token))
