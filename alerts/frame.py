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
    # What several rules of a camera ask of the same record (class masks, the tracked mask,
    # track keys), computed once per record. Arrays handed out are read-only: shared, not copied.
    _memo: dict[object, Any] = field(default_factory=dict)

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
        """Read-only mask of boxes whose class is listed (all when empty/None) and confident
        enough (combine with `&`, never in place)."""
        key = (tuple(classes) if classes else (), min_confidence)
        mask = self._memo.get(key)
        if mask is None:
            if min_confidence > 0:
                mask = self.select(classes) & (self.confidence >= min_confidence)
            elif key[0]:
                wanted = set(key[0])
                mask = np.fromiter((c in wanted for c in self.class_name), dtype=bool, count=len(self))
            else:
                mask = np.ones(len(self), dtype=bool)
            mask.flags.writeable = False
            self._memo[key] = mask
        return mask

    def tracked(self) -> NDArray[np.bool_]:
        """Read-only mask of boxes with a tracker id."""
        mask = self._memo.get("tracked")
        if mask is None:
            mask = self._memo["tracked"] = self.tracker_id >= 0
            mask.flags.writeable = False
        return mask

    def track_keys(self) -> list[str]:
        """Each box's tracker id as the string the rules key their track state by ("-1": none).

        Rules walk the few tracked boxes of a record in Python (their state is per track); a
        list of str, made once per record, spares each of them numpy scalar indexing per box.
        """
        keys = self._memo.get("keys")
        if keys is None:
            keys = self._memo["keys"] = [str(t) for t in self.tracker_id.tolist()]
        return keys

    def frame_key(self) -> str:
        """Claim-check key when the frame had one, else topic:partition:offset."""
        ref = self.frame_ref
        return ref.get("claim_check") or f"{ref['topic']}:{ref['partition']}:{ref['offset']}"
