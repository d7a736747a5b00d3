"""Benchmark of the relay against the floor (direct) and the naive SDK relay. See bench/README.md."""
