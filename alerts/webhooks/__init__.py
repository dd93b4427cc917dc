"""Webhook delivery: signing, retries with backoff, circuit breaking, dedup and dead letters."""
