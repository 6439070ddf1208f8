"""research/probes: see its README.md."""
