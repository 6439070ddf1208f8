"""BasicSR's ``--force_yml key:sub=value`` overrides, applied to an option dict as BasicSR applies them, safely.

BasicSR 1.4.2 builds Python code from the keys (``exec``) and evaluates a value that starts with ``[``
(``eval``); here keys must be plain names of an existing section path and a list must be a literal, so
the overrides can be checked (by :mod:`restore_dhp.options`) before BasicSR sees them.
"""
from __future__ import annotations

import ast
import copy
import re

from .errors import OptionError

FORCE_KEY = re.compile(r'[A-Za-z0-9_]+(:[A-Za-z0-9_]+)*')
NUMBER_WITH_EXPONENT = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+')


def _force_value(entry: str, text: str):
    """A ``--force_yml`` value converted as BasicSR converts it, except that a list is parsed, never evaluated."""
    if text == '~' or text.lower() == 'none':
        return None
    if text.lower() in ('true', 'false'):
        return text.lower() == 'true'
    if text.startswith('!!float'):
        text = text.replace('!!float', '', 1).strip()
        try:
            return float(text)
        except ValueError:
            raise OptionError(f'--force_yml {entry}: {text!r} is not a number') from None
    if text.isdigit():
        return int(text)
    if text.replace('.', '', 1).isdigit():
        return float(text)
    if NUMBER_WITH_EXPONENT.fullmatch(text):
        raise OptionError(f'--force_yml {entry}: BasicSR reads {text} as text, not a number; write '
                          f'{entry.split("=")[0]}=!!float{text}')
    if text.startswith('['):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise OptionError(f'--force_yml {entry}: a list must be a literal like [1, 2] '
                              '(BasicSR would evaluate it as Python code)') from None
    return text


def apply_force_yml(opt: dict, entries: list[str] | None) -> dict:
    """``opt`` with BasicSR's ``--force_yml key:sub=value`` overrides applied (a copy; ``opt`` is unchanged).

    Keys must be plain names of an existing section path (BasicSR builds Python code from them).
    """
    opt = copy.deepcopy(opt)
    for entry in entries or []:
        if entry.count('=') != 1:
            raise OptionError(f'--force_yml {entry}: write key:subkey=value (one =)')
        keys, text = (part.strip() for part in entry.split('='))
        if not FORCE_KEY.fullmatch(keys):
            raise OptionError(f'--force_yml {entry}: the key must be plain names joined by : (e.g. train:ema_decay)')
        *parents, last = keys.split(':')
        node = opt
        for i, key in enumerate(parents):
            node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise OptionError(f'--force_yml {entry}: option {".".join(parents[:i + 1])} is not a section')
        node[last] = _force_value(entry, text)
    return opt
