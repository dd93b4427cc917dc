"""`sightline dataset export`: the alerts' key frames with their detections, as training data."""
