"""Model manifest: everything the detector needs to feed a model and read its outputs.

A manifest travels with the model in the registry (``manifest.json``) so a worker never guesses at
run time; ``infer_manifest`` produces a first version from the ONNX file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inference.hashing import sha256_file
from inference.inspect_onnx import OnnxSignature, probe_output_shapes, read_signature
from inference.labels import COCO80, coco91_labels

Format = Literal["nanodet", "yolov5", "yolov8", "yolo_nms", "ssd_tf"]

# NanoDet's own normalisation (BGR order), also what the tfjs NanoDet-m was trained with.
NANODET_MEAN = (103.53, 116.28, 123.675)
NANODET_STD = (57.375, 57.12, 58.395)


class Preprocessing(BaseModel):
    """How decoded BGR uint8 frames become the input tensor: ``(pixel * scale - mean) / std``.

    ``mean``/``std`` are per channel in the model's channel order (after the ``color`` conversion).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    resize: Literal["letterbox", "stretch"] = "letterbox"
    pad_value: int = Field(114, ge=0, le=255)
    color: Literal["rgb", "bgr"] = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: Literal["nchw", "nhwc"] = "nchw"
    dtype: Literal["float32", "uint8"] = "float32"


class ModelManifest(BaseModel):
    """Identity, I/O contract and default decode knobs of one model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    sha256: str
    format: Format
    labels: list[str]
    input_size: tuple[int, int] = Field(description="(width, height) fed to the model")
    preprocessing: Preprocessing
    dynamic_batch: bool = True
    input_name: str = ""
    output_names: list[str] = Field(default_factory=list)
    class_offset: int = Field(0, description="subtracted from raw class ids (TF OD API ids start at 1)")
    source: str = ""
    score_threshold: float = Field(0.25, ge=0.0, le=1.0)
    nms_iou: float = Field(0.45, ge=0.0, le=1.0)

    def to_json(self) -> str:
        """Stable, human-readable JSON for ``manifest.json``."""
        return self.model_dump_json(indent=2)


_YOLO_PRE = Preprocessing(resize="letterbox", pad_value=114, color="rgb", scale=1 / 255)
_PRESETS: dict[str, dict[str, Any]] = {
    "yolov5": {"preprocessing": _YOLO_PRE, "score_threshold": 0.25, "nms_iou": 0.45},
    "yolov8": {"preprocessing": _YOLO_PRE, "score_threshold": 0.25, "nms_iou": 0.45},
    "yolo_nms": {"preprocessing": _YOLO_PRE, "score_threshold": 0.25, "nms_iou": 0.45},
    "nanodet": {
        "preprocessing": Preprocessing(
            resize="stretch", pad_value=0, color="bgr", scale=1.0, mean=NANODET_MEAN, std=NANODET_STD
        ),
        "score_threshold": 0.4,  # at 0.35 spurious 0.36 "bird"/"sports ball" appear on vtest.avi
        "nms_iou": 0.6,
    },
    "ssd_tf": {
        # The TF OD API graph resizes to its own 300x300 inside; a stretch to 300 keeps batches uniform.
        "preprocessing": Preprocessing(
            resize="stretch", pad_value=0, color="rgb", scale=1.0, layout="nhwc", dtype="uint8"
        ),
        "score_threshold": 0.4,
        "nms_iou": 0.6,
    },
}


def _input_geometry(sig: OnnxSignature) -> tuple[str, str, tuple[int, int]]:
    """(layout, dtype, (w, h)) of the first input, falling back to metadata / format-typical sizes."""
    inp = sig.inputs[0]
    if len(inp.shape) != 4:
        raise ValueError(f"expected a 4-D image input, got {inp.name} {inp.shape}")
    layout = "nhwc" if inp.shape[3] in (1, 3) and inp.shape[1] not in (1, 3) else "nchw"
    h, w = (inp.shape[1], inp.shape[2]) if layout == "nhwc" else (inp.shape[2], inp.shape[3])
    dtype = "uint8" if inp.dtype == "uint8" else "float32"
    if isinstance(h, int) and isinstance(w, int):
        return layout, dtype, (w, h)
    if sig.imgsz is not None:
        return layout, dtype, (sig.imgsz[1], sig.imgsz[0])
    side = 300 if dtype == "uint8" else 640
    return layout, dtype, (side, side)


def detect_format(sig: OnnxSignature, shapes: list[tuple[int, ...]]) -> Format:
    """Classify the output layout; see README of /work/shared for the shapes each format produces."""
    names = " ".join(o.name for o in sig.outputs)
    if len(shapes) == 4 and "detection_boxes" in names:
        return "ssd_tf"
    if len(shapes) >= 2 and len(shapes) % 2 == 0 and all(len(s) == 3 for s in shapes):
        cells = sorted(s[1] for s in shapes)
        if cells[::2] == cells[1::2] and len({s[2] for s in shapes}) == 2:
            return "nanodet"
    if len(shapes) != 1 or len(shapes[0]) != 3:
        raise ValueError(f"unrecognised output layout {shapes}; pass format= explicitly")
    _, rows, cols = shapes[0]
    nc = len(sig.names) if sig.names else None
    if sig.metadata.get("end2end", "").lower() == "true":
        return "yolo_nms"
    if rows < cols:  # channels first: [B, 4 + nc, anchors]
        return "yolov8"
    if cols == 6 and nc != 1:  # x1, y1, x2, y2, score, class (a 1-class YOLOv5 is also 6 wide)
        return "yolo_nms"
    if nc is None or cols == 5 + nc:
        return "yolov5"
    raise ValueError(f"output {shapes[0]} fits no known layout for {nc} classes; pass format= explicitly")


def _nanodet_num_classes(channels: set[int]) -> int:
    """Pick the class-score width out of {classes, 4 * bins}: box regressions are always a multiple of 4."""
    not_box = [c for c in channels if c % 4 != 0]
    return not_box[0] if not_box else max(channels)


def _default_labels(fmt: Format, sig: OnnxSignature, shapes: list[tuple[int, ...]]) -> list[str]:
    if sig.names:
        return sig.names
    if fmt == "ssd_tf":
        return coco91_labels()
    nc = {
        "yolov8": lambda: shapes[0][1] - 4,
        "yolov5": lambda: shapes[0][2] - 5,
        "yolo_nms": lambda: 80,
        "nanodet": lambda: _nanodet_num_classes({s[2] for s in shapes}),
    }[fmt]()
    return list(COCO80) if nc == 80 else [f"class_{i}" for i in range(nc)]


def infer_manifest(onnx_path: str | Path, name: str, version: str, **overrides: Any) -> ModelManifest:
    """Build a manifest from the model's inputs, probed outputs and metadata; ``overrides`` win.

    ``overrides`` may hold any manifest field; ``preprocessing`` may be a partial dict.
    """
    sig = read_signature(onnx_path)
    layout, dtype, (w, h) = _input_geometry(sig)
    probe_shape = (1, h, w, 3) if layout == "nhwc" else (1, 3, h, w)
    shapes = probe_output_shapes(onnx_path, probe_shape, dtype)
    fmt: Format = overrides.pop("format", None) or detect_format(sig, shapes)
    preset = _PRESETS[fmt]
    pre = preset["preprocessing"].model_dump() | {"layout": layout, "dtype": dtype}
    pre |= overrides.pop("preprocessing", None) or {}
    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        "sha256": sha256_file(onnx_path),
        "format": fmt,
        "labels": _default_labels(fmt, sig, shapes),
        "input_size": (w, h),
        "preprocessing": Preprocessing(**pre),
        "dynamic_batch": not isinstance(sig.inputs[0].shape[0], int),
        "input_name": sig.inputs[0].name,
        "output_names": [o.name for o in sig.outputs],
        "class_offset": 0,
        "score_threshold": preset["score_threshold"],
        "nms_iou": preset["nms_iou"],
        "source": str(onnx_path),
    }
    return ModelManifest(**(fields | overrides))
