"""research/gpu_campaign: see its README.md."""
