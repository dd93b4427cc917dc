"""Alert processors: rules over detections, alert records, and webhook delivery.

Talks to the other stages only through Kafka topics and the contracts in `schemas/`.
"""
