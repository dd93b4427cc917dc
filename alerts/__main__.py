"""`python -m alerts ...`: the same commands as `sightline alerts ...`."""

from alerts.cli import app

app()
