"""Sightline: streaming video analytics over Apache Kafka."""

__version__ = "0.1.0"
