"""Scan-gap matching: each counted item needs a POS scan within ±tolerance; an item still
unmatched once the newest capture time passes `t + tolerance + grace` raises `scan_gap`."""

from __future__ import annotations

from typing import Any

from alerts.rules.base import NS, CameraContext
from alerts.settings import LaneSettings, ScanGapSettings
from schemas.alert import AlertRecord

Item = dict[str, Any]


class ScanGap:
    """State: the lane's `pending` items and buffered `scans` ([t, class, quantity left, key])."""

    def __init__(self, cfg: LaneSettings, gap: ScanGapSettings, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.gap = gap
        self.ctx = ctx
        self.name = cfg.name
        self.classes = set(gap.classes) if gap.classes else None
        self.tol_ns = int(gap.tolerance_s * NS)
        self.grace_ns = int(gap.grace_s * NS)

    def wants(self, cls: str) -> bool:
        return self.classes is None or cls in self.classes

    def _class_ok(self, item_cls: str, scan_cls: str | None) -> bool:
        return not (self.gap.match_class and scan_cls is not None and scan_cls != item_cls)

    def item(self, st: dict[str, Any], item: Item) -> None:
        """A counted item: consumes one buffered scan within tolerance, else waits for one."""
        for scan in st["scans"]:
            if abs(scan[0] - item["t"]) <= self.tol_ns and self._class_ok(item["cls"], scan[1]):
                scan[2] -= 1
                if scan[2] == 0:
                    st["scans"].remove(scan)
                return
        st["pending"].append(item)

    def scan(self, st: dict[str, Any], t: int, cls: str | None, qty: int, key: str) -> None:
        """A POS scan (× quantity): matches the nearest pending items, buffers the rest."""
        pending = st["pending"]
        for item in sorted(pending, key=lambda it: (abs(it["t"] - t), it["t"], it["tid"])):
            if qty == 0:
                break
            if abs(item["t"] - t) <= self.tol_ns and self._class_ok(item["cls"], cls):
                pending.remove(item)
                qty -= 1
        if qty:
            st["scans"].append([t, cls, qty, key])

    def due(self, st: dict[str, Any]) -> list[AlertRecord]:
        if not st["pending"]:
            return []
        due = self.ctx.max_capture_ns - self.tol_ns - self.grace_ns
        ready = [it for it in st["pending"] if it["t"] <= due]
        for item in ready:
            st["pending"].remove(item)
        return [self._alert(item) for item in ready]

    def sweep(self, st: dict[str, Any], wm: int) -> None:
        """Forget buffered scans no later item can match any more."""
        horizon = wm - self.tol_ns
        st["scans"] = [s for s in st["scans"] if s[0] >= horizon]

    def flush(self, st: dict[str, Any]) -> list[AlertRecord]:
        alerts = [self._alert(item) for item in st["pending"]]
        st["pending"] = []
        return alerts

    def _alert(self, item: Item) -> AlertRecord:
        return self.ctx.alert(
            type="scan_gap",
            severity=self.gap.severity,
            rule=self.name,
            start_ns=item["t"] - self.tol_ns,
            end_ns=item["t"] + self.tol_ns,
            summary=f"{self.name}: {item['cls']} (track {item['tid']}) counted with no POS scan "
            f"within {self.gap.tolerance_s:g}s",
            evidence={
                "kind": "scan_gap",
                "lane": self.name,
                "register": self.cfg.pos_register,
                "track_id": int(item["tid"]),
                "class_name": item["cls"],
                "counted_ns": item["t"],
                "seq": item["seq"],
                "box": item["box"],
                "frame": item["frame"],
            },
            id_parts=("scan_gap", self.name, item["tid"], item["t"]),
        )
