"""Drift monitoring: per camera, recent input and output statistics against a baseline window."""

from sightline.drift.monitor import DriftEvent, DriftMonitor
from sightline.drift.service import run_drift

__all__ = ["DriftEvent", "DriftMonitor", "run_drift"]
