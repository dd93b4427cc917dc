"""Target-fps sampling on stream time, so sampling is exact for files and live alike."""

from __future__ import annotations


class FpsSampler:
    """Keeps a frame when its timestamp reaches the next slot; `fps=None` keeps every frame.

    Slots advance by whole periods, so 25 fps sampled to 10 fps keeps 10 frames per second
    on average, without drift.
    """

    def __init__(self, fps: float | None) -> None:
        self.period = 1.0 / fps if fps else 0.0
        self._next: float | None = None

    def keep(self, t: float) -> bool:
        if not self.period:
            return True
        # Tolerance of 1 ms absorbs rounding of timestamps at the source's time base.
        if self._next is None or t + 1e-3 >= self._next:
            if self._next is None or t - self._next > self.period:
                self._next = t  # first frame, or a jump after a gap: resynchronise
            self._next += self.period
            return True
        return False

    def reset(self) -> None:
        self._next = None
