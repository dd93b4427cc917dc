"""Benchmarks behind `sightline bench ...` that span several stages."""
