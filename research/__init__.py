"""The studies behind the shipped weights, each in its own folder with its scripts, options and report.

Run from the checkout's root: ``python -m research.<study>.<script>`` or ``bash research/<study>/<script>.sh``.
See research/README.md.
"""
