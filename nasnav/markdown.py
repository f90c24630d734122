"""Values in Markdown: escaped, so that no user string becomes a link, an image, HTML or a table cell.

The model card and the app's captions are Markdown built from run files and configs (config labels,
class labels, architecture strings, decision reasons). ``text`` puts a value in running text: one line,
every character that could open a construct (link, image, HTML, emphasis, code, table cell, math,
autolink) backslash-escaped; GitHub's renderer still links a bare e-mail address (``a@b.example``) as
``mailto:``, which no escape prevents. ``code`` puts a value in an inline code span, where nothing is
interpreted (no autolink either), fenced so that no backtick in the value can close it: the form for
data such as class labels and architecture strings. Both are pure (no Streamlit).
"""

from __future__ import annotations

import re
import unicodedata

# Escaped wherever they stand: brackets and ! (links, images), < > & (HTML, autolinks, entities), the
# emphasis / code / strikethrough / table / math markers, and the backslash itself.
_ANYWHERE = re.compile(r"([\\`*_\[\]<>&|~!$@])")
_AUTOLINK = re.compile(r"(?i)(:)(?=//)|(?<=www)(\.)")  # GFM links bare URLs: break "://" and "www."
_LINE_START = re.compile(r"^(\s*)([#+=>-]|\d+(?=[.)]))")  # headings, lists, quotes when a value starts a line


def one_line(value: object) -> str:
    """``str(value)`` with every line break (``\\n``, ``\\r``, U+2028, U+2029, U+0085 ...) and other control
    character turned into a space: a value never starts a new Markdown block."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in str(value))


def text(value: object) -> str:
    """A value as literal Markdown text (one line)."""
    s = _ANYWHERE.sub(r"\\\1", one_line(value))
    s = _AUTOLINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), s)
    return _LINE_START.sub(lambda m: m.group(1) + ("\\" + m.group(2) if not m.group(2).isdigit() else m.group(2) + "\\"), s)


_MESSAGE = re.compile(r"([\\\[\]<>&$])")


def message(value: object) -> str:
    """A message (an error naming a bad value, a job's status) for ``st.error`` and friends: its lines kept,
    links, images, HTML, entities, math and autolinks neutralised; code spans and emphasis left as written."""
    lines = [one_line(line) for line in str(value).split("\n")]
    return "\n".join(_AUTOLINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), _MESSAGE.sub(r"\\\1", line))
                     for line in lines)


def code(value: object, in_table: bool = False) -> str:
    """A value as an inline code span (one line), fenced with more backticks than it holds in a row;
    ``in_table``: pipes escaped as GFM tables require inside a cell."""
    s = one_line(value)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s[:1] in ("`", " ") or s[-1:] in ("`", " ") else ""
    if in_table:
        s = s.replace("|", "\\|")
    return f"{fence}{pad}{s}{pad}{fence}"
