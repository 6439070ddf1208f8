"""Reading a YAML file with limits: its size, and the number of nodes once its aliases are expanded.

PyYAML builds an alias as a second reference to the same object, so a file of a few hundred bytes
(ten anchors, each a list of ten aliases of the one before: a "billion laughs") loads at once, and then
anything that walks the result (the option check, ``--force_yml``, BasicSR's own parsing) visits 10^10
nodes.  Here the document is composed first (aliases still shared), the expanded node count is taken with
each shared node counted once per use (memoised: no expansion happens), and a file over
:data:`MAX_NODES` -- or one whose aliases refer to themselves -- is refused in one line before anything is
constructed.  Option files have a few hundred nodes and a few kilobytes.
"""
from __future__ import annotations

import os
from typing import Any

import yaml

MAX_BYTES = 1 << 20     # 1 MiB
MAX_NODES = 100_000     # scalars, sequences and mappings, aliases expanded


class YamlLimitError(ValueError):
    """A YAML file that cannot be read within the limits; the message names the file and the reason."""


def _expanded_nodes(node, counted: dict, open_nodes: set, limit: int) -> int:
    key = id(node)
    if key in counted:
        return counted[key]
    if key in open_nodes:
        raise RecursionError('an alias refers to the node that holds it')
    open_nodes.add(key)
    children = (node.value if isinstance(node, yaml.SequenceNode) else
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
    total = 1
    for child in children:
        total += _expanded_nodes(child, counted, open_nodes, limit)
        if total > limit:
            break  # over: no need to count on
    open_nodes.discard(key)
    counted[key] = total
    return total


def load_yaml_file(path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """The document of the YAML file ``path`` (``yaml.safe_load``'s result), within the limits; raises
    :class:`YamlLimitError` over them, ``yaml.YAMLError`` for invalid YAML and ``OSError`` if unreadable."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise YamlLimitError(f'{path} is {size:,} bytes, over the {max_bytes:,} a YAML file may have here')
    with open(path, encoding='utf-8') as f:
        loader = yaml.SafeLoader(f.read())
    try:
        try:
            node = loader.get_single_node()
            count = 0 if node is None else _expanded_nodes(node, {}, set(), max_nodes)
        except RecursionError as e:
            why = str(e) if 'alias' in str(e) else 'it is nested too deeply'
            raise YamlLimitError(f'{path}: {why}') from None
        if node is None:
            return None
        if count > max_nodes:
            raise YamlLimitError(f'{path}: its aliases expand to more than {max_nodes:,} nodes (a YAML alias bomb?); '
                                 'write the values out')
        return loader.construct_document(node)
    finally:
        loader.dispose()
