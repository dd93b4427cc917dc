"""Evidence of alerts: a snapshot and a clip per alert, rebuilt from the frames and detections topics."""
