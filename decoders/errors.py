"""Decoder errors, each phrased so an operator knows what to fix."""


class SourceError(RuntimeError):
    """The source could not be opened or read (bad path, unreachable URL, unknown codec)."""


class StreamStalled(SourceError):
    """A live source stopped sending frames."""
