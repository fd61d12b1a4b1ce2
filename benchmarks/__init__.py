"""Benchmarks of collect's issue, ingest and report steps against the naive way (`python -m benchmarks.run`)."""
