"""Maintainer tooling, run from the checkout's root: ``python -m tools.<name>`` or ``bash tools/<name>.sh``.

Not part of the installed package: these train the shipped weights, write the model card and the README's results,
run option files side by side, and count the code's structure. See tools/README.md.
"""
