"""The benchmark suite: each benchmark sets an engine figure beside a direct baseline measured in
the same run, and `python -m bench` writes them into docs/benchmarks.md (see bench/core.py)."""
