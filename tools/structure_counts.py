"""Structure counts of the code base: rooms, arrows, circles, task branches, lines.

    python -m tools.structure_counts [--root .] [--list]

- rooms: Python modules in restore_dhp/, tools/ and research/ (packages count by their __init__) and app.py;
- arrows: import edges between those modules (module-level and deferred imports alike);
- circles: import cycles, deferred (function-level) imports counted too (strongly connected groups of more
  than one module);
- private imports: ``from <our module> import _name`` (another module's private name);
- task branches: comparisons with a task name ('sr' or 'denoise') outside restore_dhp/tasks.py;
- lines: files over 400 lines (and over 300, to watch), functions over 60 lines, the median function length;
- option files in options/train (at most 24: one per recipe family, tools/recipes.py) and the README's size (at
  most 30,000 bytes: what a user needs; the studies' detail lives in research/).
Reads the source with `ast`; imports nothing from the project.
"""
import argparse
import ast
import statistics
import sys
from pathlib import Path

PACKAGE = 'restore_dhp'
PYTHON_ROOTS = (PACKAGE, 'tools', 'research')   # packages whose modules are rooms
TASK_NAMES = {'sr', 'denoise'}
TASK_HOME = f'{PACKAGE}/tasks.py'
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60
WATCH_FILE_LINES = 300            # files over this are listed, not refused
MAX_OPTION_FILES = 24             # options/train/*.yml
MAX_README_BYTES = 30_000


def module_files(root):
    """{module name: path} for the package, the maintainer tools, the studies and app.py."""
    files = {}
    for folder in PYTHON_ROOTS:
        for path in sorted((root / folder).rglob('*.py')):
            parts = list(path.relative_to(root).with_suffix('').parts)
            files['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    if (root / 'app.py').exists():
        files['app'] = root / 'app.py'
    return files


def _imported_names(node, module, is_package):
    """Absolute dotted names an import statement reaches (`from a import b` gives a.b and a)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ''
    if node.level:
        parent = module.split('.')[: len(module.split('.')) - node.level + (1 if is_package else 0)]
        base = '.'.join(parent + ([base] if base else []))
    return [base] + [f'{base}.{alias.name}' for alias in node.names]


def _import_targets(node, module, is_package, files):
    """Our modules an import statement depends on: ``from a import b`` reaches module ``a.b`` where that is a
    module, else ``a`` (importing a submodule runs its package's ``__init__`` anyway, which is no arrow)."""
    names = _imported_names(node, module, is_package)
    if isinstance(node, ast.Import):
        return [n for n in names if n in files]
    base, *members = names
    targets = [m for m in members if m in files]
    if len(targets) < len(members) and base in files:
        targets.append(base)
    return targets


def private_imports(tree, module, is_package, files):
    """Names starting with one underscore imported from another of our modules."""
    return [f'{alias.name} from {node.module or "."}' for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and _imported_names(node, module, is_package)[0] in files
            for alias in node.names if alias.name.startswith('_') and not alias.name.startswith('__')]


def imports(files):
    """{module: (all imported modules, module-level imported modules)}, internal ones only."""
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(n) for n in tree.body}
        every, top = set(), set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _import_targets(node, module, path.name == '__init__.py', files):
                if name != module:
                    every.add(name)
                    if id(node) in top_level:
                        top.add(name)
        graph[module] = (every, top)
    return graph


def cycles(edges):
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


def task_branches(tree):
    """Line numbers of comparisons with a task name as a string constant."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in TASK_NAMES for o in operands):
                lines.append(node.lineno)
    return lines


def function_lengths(tree):
    return [(n.name, n.lineno, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def measure(root):
    files = module_files(root)
    graph = imports(files)
    report = {'rooms': len(files), 'arrows': sum(len(every) for every, _ in graph.values()),
              'circles': cycles({m: every for m, (every, _) in graph.items()}),
              'branches': [], 'private_imports': [], 'long_files': [], 'long_functions': [], 'function_lines': [],
              'files_over_300': [], 'option_files': len(list((root / 'options' / 'train').glob('*.yml'))),
              'readme_bytes': (root / 'README.md').stat().st_size if (root / 'README.md').exists() else 0}
    for module, path in files.items():
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        tree = ast.parse(text, rel)
        n_lines = len(text.splitlines())
        if n_lines > MAX_FILE_LINES:
            report['long_files'].append((rel, n_lines))
        if n_lines > WATCH_FILE_LINES:
            report['files_over_300'].append((rel, n_lines))
        report['private_imports'] += [f'{rel}: {name}' for name in
                                      private_imports(tree, module, path.name == '__init__.py', files)]
        if rel != TASK_HOME:
            report['branches'] += [f'{rel}:{line}' for line in task_branches(tree)]
        for name, line, length in function_lengths(tree):
            report['function_lines'].append(length)
            if length > MAX_FUNCTION_LINES:
                report['long_functions'].append((f'{rel}:{line} {name}', length))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument('--list', action='store_true', help='list each branch, long file and long function')
    args = parser.parse_args(argv)
    r = measure(args.root)
    branch_files = {b.split(':')[0] for b in r['branches']}
    print(f"rooms {r['rooms']}, arrows {r['arrows']}, circles {len(r['circles'])}, "
          f"task branches {len(r['branches'])} in {len(branch_files)} files, "
          f"private imports {len(r['private_imports'])}, "
          f"files over {MAX_FILE_LINES} lines {len(r['long_files'])} "
          f"(over {WATCH_FILE_LINES}: {len(r['files_over_300'])}), "
          f"functions over {MAX_FUNCTION_LINES} lines {len(r['long_functions'])}, "
          f"median function {statistics.median(r['function_lines']):g} lines, "
          f"option files in options/train {r['option_files']} (at most {MAX_OPTION_FILES}), "
          f"README {r['readme_bytes']:,} bytes (at most {MAX_README_BYTES:,})")
    if args.list:
        for group in r['circles']:
            print('circle:', ' -> '.join(group))
        for where in r['branches']:
            print('branch:', where)
        for where in r['private_imports']:
            print('private import:', where)
        for rel, n in r['files_over_300']:
            print(f"{'long' if n > MAX_FILE_LINES else 'over 300'}: {rel} ({n} lines)")
        for where, n in r['long_functions']:
            print(f'long function: {where} ({n} lines)')


if __name__ == '__main__':
    main()
