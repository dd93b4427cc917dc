"""Serve the registry's promoted model and swap it in when a promotion or rollback happens.

A worker calls ``current()`` before each micro-batch; the registry is polled at most every ``poll_s``
seconds (one small JSON read), and the new detector is fully built before it replaces the old one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from inference.detector import Detector
from inference.engines import EngineKind
from inference.registry import ModelRegistry

log = logging.getLogger(__name__)


class PromotedDetector:
    """Holds the detector for ``registry.promoted(name)`` and reloads it when ``state_token`` changes."""

    def __init__(
        self,
        registry: ModelRegistry,
        name: str,
        *,
        engine: EngineKind = "cpu",
        engine_options: dict[str, Any] | None = None,
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_replaced: Callable[[Detector], None] | None = None,
        **detector_options: Any,
    ) -> None:
        self.registry, self.name, self.poll_s, self._clock = registry, name, poll_s, clock
        # Who closes a replaced detector: by default at once; a pipelined caller whose batches may
        # still be running on it closes it itself once they are done.
        self._on_replaced = on_replaced or Detector.close
        self._build_args = (engine, engine_options, detector_options)
        self._token = registry.state_token(name)
        self._detector = self._build()
        self._checked = clock()

    def _build(self) -> Detector:
        engine, engine_options, detector_options = self._build_args
        return Detector.from_registry(self.registry, self.name, engine, engine_options, **detector_options)

    def current(self) -> Detector:
        """The detector to use now; on a failed reload the previous one keeps serving (and it is logged)."""
        now = self._clock()
        if now - self._checked >= self.poll_s:
            self._checked = now
            token = self.registry.state_token(self.name)
            if token != self._token:
                try:
                    fresh = self._build()
                except Exception:
                    log.exception(
                        "reloading %s for state %s failed; keeping %s", self.name, token, self.version
                    )
                else:
                    old, self._detector, self._token = self._detector, fresh, token
                    self._on_replaced(old)
                    log.info("%s now serving version %s", self.name, self.version)
        return self._detector

    @property
    def version(self) -> str:
        return self._detector.manifest.version

    def close(self) -> None:
        self._detector.close()
