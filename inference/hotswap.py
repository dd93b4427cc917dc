"""Serve the registry's promoted model and swap it in when a promotion or rollback happens.

A worker calls ``current()`` before each micro-batch; the registry is polled at most every ``poll_s``
seconds (one small JSON read), and the new detector is fully built before it replaces the old one.
With ``build_in_background`` (what the worker and the API use) the build runs on a thread of its
own while the old model keeps serving: a TensorRT engine build takes minutes, and a pipeline stage
that waited for it would stall every camera and look hung to the liveness probe.
"""

from __future__ import annotations

import logging
import threading
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
        build_in_background: bool = False,
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
        self._background = build_in_background
        self._lock = threading.Lock()
        self._building: threading.Thread | None = None
        self._built: tuple[str, Detector] | None = None  # a finished background build, not adopted yet
        self._closed = False

    def _build(self) -> Detector:
        engine, engine_options, detector_options = self._build_args
        return Detector.from_registry(self.registry, self.name, engine, engine_options, **detector_options)

    def current(self) -> Detector:
        """The detector to use now; on a failed reload the previous one keeps serving (and it is logged)."""
        self._adopt_built()
        now = self._clock()
        if now - self._checked >= self.poll_s:
            self._checked = now
            token = self.registry.state_token(self.name)
            if token != self._token and self._building is None:
                if self._background:
                    self._building = threading.Thread(
                        target=self._build_for, args=(token,), name=f"build-{self.name}", daemon=True
                    )
                    self._building.start()
                else:
                    self._build_for(token)
                    self._adopt_built()
        return self._detector

    def _build_for(self, token: str) -> None:
        try:
            fresh = self._build()
        except Exception:
            log.exception("reloading %s for state %s failed; keeping %s", self.name, token, self.version)
            fresh = None
        with self._lock:
            self._building = None
            if fresh is not None and self._closed:
                fresh.close()  # closed while it was building: nobody will serve it
            elif fresh is not None:
                self._built = (token, fresh)

    def _adopt_built(self) -> None:
        """Swap in a finished build; on the caller's thread, so ``on_replaced`` runs where it always did."""
        with self._lock:
            built, self._built = self._built, None
        if built is None:
            return
        old, (self._token, self._detector) = self._detector, built
        self._on_replaced(old)
        log.info("%s now serving version %s", self.name, self.version)

    @property
    def building(self) -> bool:
        """A newly promoted version is being built in the background."""
        return self._building is not None

    @property
    def version(self) -> str:
        return self._detector.manifest.version

    def close(self) -> None:
        with self._lock:
            self._closed = True
            built, self._built = self._built, None
        if built is not None:
            built[1].close()
        self._detector.close()
