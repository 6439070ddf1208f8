"""A generated block inside a hand-written Markdown file, between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``."""
from __future__ import annotations


def markers(name: str) -> tuple[str, str]:
    return f'<!-- {name}:begin -->', f'<!-- {name}:end -->'


def splice(doc: str, name: str, body: str) -> str:
    """``doc`` with what lies between its ``name`` markers replaced by ``body`` (which ends with a newline);
    ValueError when ``doc`` lacks either marker."""
    begin, end = markers(name)
    if begin not in doc or end not in doc:
        raise ValueError(f'no {begin} ... {end} block')
    head, rest = doc.split(begin, 1)
    return head + begin + '\n' + body + end + rest.split(end, 1)[1]
