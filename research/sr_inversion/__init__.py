"""research/sr_inversion: see its README.md."""
