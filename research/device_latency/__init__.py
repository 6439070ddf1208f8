"""research/device_latency: see its README.md."""
