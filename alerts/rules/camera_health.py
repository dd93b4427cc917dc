"""Camera health: offline, covered, out of focus or moved, from the camera-health topic.

The decoder measures a frame every few seconds and says when its source is away; the alert
processors add `tick` records of their own (wall clock), so a camera whose decoder is gone and
writes nothing is still noticed: a tick is read after everything the decoder wrote before it in
the camera's partition, so the silence it measures is real (docs/alerts.md, "Camera health").

This rule has its own clock, the newest `at_ns` of the camera's health records: it never moves
the detections clock (ticks would otherwise make late detections records "too late").
"""

from __future__ import annotations

from typing import Any

from alerts.rules.base import NS, CameraContext, Evaluator
from alerts.settings import CameraHealthRule
from schemas.alert import AlertRecord, Severity
from schemas.camera_health import CameraHealth

CHECKS = ("offline", "covered", "out_of_focus", "moved")


class CameraHealthEvaluator(Evaluator):
    def __init__(self, cfg: CameraHealthRule, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        super().__init__(ctx)

    def initial_state(self) -> dict[str, Any]:
        # episodes[check] = [start_ns, fired] while the condition holds, else absent
        return {"first": -1, "last": -1, "frame": -1, "episodes": {}}

    def on_health(self, record: CameraHealth) -> list[AlertRecord]:
        st = self.state
        t = record.at_ns
        if st["first"] < 0:
            st["first"] = t
        st["last"] = max(st["last"], t)
        alerts: list[AlertRecord] = []
        if record.kind == "stats":
            if t <= st["frame"]:
                return []  # an older measurement (a duplicate): already applied
            st["frame"] = t
            st["episodes"].pop("offline", None)  # frames are flowing again
            alerts += self._image(record)
        alerts += self._offline(record)
        return alerts

    # -- offline ---------------------------------------------------------------------------------
    def _offline(self, record: CameraHealth) -> list[AlertRecord]:
        st = self.state
        if self.cfg.offline_s is None:
            return []
        since = st["frame"] if st["frame"] >= 0 else st["first"]
        silent_s = (st["last"] - since) / NS
        if record.kind == "offline" and record.at_ns > st["frame"] and record.offline_s is not None:
            silent_s = max(silent_s, record.offline_s)  # the decoder's own measure, one clock
        if silent_s < self.cfg.offline_s:
            return []
        episode = st["episodes"].setdefault("offline", [since, False])
        if episode[1]:
            return []
        episode[1] = True
        reason = record.reason if record.kind == "offline" else None
        what = "no frame" if st["frame"] >= 0 else "no frame since health records began"
        return [
            self._alert(
                "offline",
                self.cfg.offline_severity,
                episode[0],
                record.at_ns,
                f"{self.name}: camera {self.ctx.camera_id} offline, {what} for {silent_s:.0f}s"
                + (f" ({reason})" if reason else ""),
                {
                    "offline_s": round(silent_s, 3),
                    "threshold_s": self.cfg.offline_s,
                    "last_frame_ns": st["frame"] if st["frame"] >= 0 else None,
                    "noticed_by": record.kind,
                    "reason": reason,
                },
            )
        ]

    # -- image statistics ------------------------------------------------------------------------
    def _image(self, record: CameraHealth) -> list[AlertRecord]:
        alerts: list[AlertRecord] = []
        covered = self._covered(record)
        measured = {
            "brightness": record.brightness,
            "contrast": record.contrast,
            "sharpness": record.sharpness,
            "similarity": record.similarity,
            "seq": record.seq,
        }
        if (c := self.cfg.covered) is not None:
            alerts += self._episode(
                "covered", record.at_ns, covered, c.for_s, c.severity,
                f"covered, blacked out or washed out (brightness {record.brightness:.0f}, "
                f"contrast {record.contrast:.1f})",
                {**measured, "contrast_below": c.contrast_below, "brightness_below": c.brightness_below,
                 "brightness_above": c.brightness_above},
            )  # fmt: skip
        # A covered picture is also blurred and unlike the reference: say only that it is covered.
        if (f := self.cfg.out_of_focus) is not None:
            soft = not covered and record.sharpness is not None and record.sharpness < f.sharpness_below
            alerts += self._episode(
                "out_of_focus", record.at_ns, soft, f.for_s, f.severity,
                f"out of focus (sharpness {record.sharpness or 0:.1f} < {f.sharpness_below:g})",
                {**measured, "sharpness_below": f.sharpness_below},
            )  # fmt: skip
        if (m := self.cfg.moved) is not None:
            moved = not covered and record.similarity is not None and record.similarity < m.similarity_below
            alerts += self._episode(
                "moved", record.at_ns, moved, m.for_s, m.severity,
                f"moved: the scene no longer matches its reference (similarity {record.similarity or 0:.2f} "
                f"< {m.similarity_below:g})",
                {**measured, "similarity_below": m.similarity_below, "reference_id": record.reference_id},
            )  # fmt: skip
        return alerts

    def _covered(self, record: CameraHealth) -> bool:
        c = self.cfg.covered
        if c is None or record.brightness is None or record.contrast is None:
            return False
        return (
            (c.contrast_below is not None and record.contrast < c.contrast_below)
            or (c.brightness_below is not None and record.brightness < c.brightness_below)
            or (c.brightness_above is not None and record.brightness > c.brightness_above)
        )

    def _episode(
        self,
        check: str,
        t: int,
        holds: bool,
        for_s: float,
        severity: Severity,
        what: str,
        evidence: dict[str, Any],
    ) -> list[AlertRecord]:
        """One alert per episode: when the condition has held for `for_s` of event time."""
        episodes = self.state["episodes"]
        if not holds:
            episodes.pop(check, None)
            return []
        episode = episodes.setdefault(check, [t, False])
        if episode[1] or t - episode[0] < for_s * NS:
            return []
        episode[1] = True
        summary = f"{self.name}: camera {self.ctx.camera_id} {what} for {(t - episode[0]) / NS:.0f}s"
        return [self._alert(check, severity, episode[0], t, summary, {**evidence, "for_s": for_s})]

    def _alert(
        self, check: str, severity: Severity, start_ns: int, t: int, summary: str, evidence: dict[str, Any]
    ) -> AlertRecord:
        return self.ctx.alert(
            type="camera_health",
            severity=severity,
            rule=self.name,
            start_ns=start_ns,
            end_ns=t,
            summary=summary,
            evidence={"kind": check, **evidence},
            id_parts=(check, start_ns),
            at_ns=t,
        )
