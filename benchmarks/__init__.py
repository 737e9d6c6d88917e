"""Speed and reproduction benchmarks: python -m benchmarks.<name>."""
