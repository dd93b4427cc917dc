"""A DetectionsRecord as numpy arrays, built once per record and shared by every rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from schemas.detections import DetectionsRecord


@dataclass(frozen=True, slots=True)
class Frame:
    camera_id: str
    seq: int
    capture_ns: int
    frame_ref: dict[str, Any]
    xyxy: NDArray[np.float64]
    confidence: NDArray[np.float64]
    class_name: list[str]
    # -1 where the record has no tracker id.
    tracker_id: NDArray[np.int64]
    # The worker skipped the frame (too old under a realtime freshness policy): not seen.
    skipped: bool = False
    # Class masks are asked for by several rules per record; computed once each.
    _masks: dict[tuple[str, ...], NDArray[np.bool_]] = field(default_factory=dict)
    _keys: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_record(cls, record: DetectionsRecord) -> Frame:
        det = record.detections
        return cls(
            camera_id=record.camera_id,
            seq=record.seq,
            capture_ns=record.capture_ns,
            frame_ref=record.frame.model_dump(),
            xyxy=det.xyxy,
            confidence=det.confidence,
            class_name=det.class_name.tolist(),
            tracker_id=det.tracker_id,
            skipped=record.skipped is not None,
        )

    def __len__(self) -> int:
        return len(self.confidence)

    def select(self, classes: list[str] | None, min_confidence: float = 0.0) -> NDArray[np.bool_]:
        """Mask of boxes whose class is listed (all when empty/None) and confident enough."""
        key = tuple(classes) if classes else ()
        mask = self._masks.get(key)
        if mask is None:
            n = len(self.class_name)
            if key:
                wanted = set(key)
                mask = np.fromiter((c in wanted for c in self.class_name), dtype=bool, count=n)
            else:
                mask = np.ones(n, dtype=bool)
            self._masks[key] = mask
        return mask & (self.confidence >= min_confidence) if min_confidence > 0 else mask.copy()

    def track_keys(self) -> list[str]:
        """Each box's tracker id as the string the rules key their track state by ("-1": none).

        Rules walk the few tracked boxes of a record in Python (their state is per track); a
        list of str, made once per record, spares each of them numpy scalar indexing per box.
        """
        if not self._keys:
            self._keys.append([str(t) for t in self.tracker_id.tolist()])
        return self._keys[0]

    def frame_key(self) -> str:
        """Claim-check key when the frame had one, else topic:partition:offset."""
        ref = self.frame_ref
        return ref.get("claim_check") or f"{ref['topic']}:{ref['partition']}:{ref['offset']}"
