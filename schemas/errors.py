"""The one error type for records that break a wire contract."""


class ContractError(ValueError):
    """A record that breaks its contract; `reason` is what goes into the dead-letter record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
