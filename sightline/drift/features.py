"""Per-frame features: image statistics from frame records, output statistics from detections."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import simplejpeg

from schemas.detections import DetectionsRecord
from schemas.frame import sniff_encoding

INPUT_FEATURES = ("brightness", "contrast", "sharpness")
CLASS_MIX = "class_mix"


def gray(payload: bytes, scale: int) -> np.ndarray:
    """Grayscale pixels, downscaled by `scale` in the JPEG DCT (nearly free) to keep this cheap."""
    if sniff_encoding(payload) == "jpeg":
        image = simplejpeg.decode_jpeg(payload, colorspace="GRAY", min_factor=scale, strict=False)
        return image.reshape(image.shape[0], image.shape[1])
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError("undecodable image")
    if scale > 1:
        image = cv2.resize(image, (image.shape[1] // scale, image.shape[0] // scale), cv2.INTER_AREA)
    return image


def image_stats(image: np.ndarray) -> dict[str, float]:
    """Brightness and contrast (mean and std of gray, 0..1) and sharpness (variance of the Laplacian)."""
    pixels = image.astype(np.float32) / 255.0
    return {
        "brightness": float(pixels.mean()),
        "contrast": float(pixels.std()),
        "sharpness": float(cv2.Laplacian(image, cv2.CV_32F).var()),
    }


def output_stats(record: DetectionsRecord) -> tuple[dict[str, float], Counter[str]]:
    """Numeric output features of one frame (mean confidence only if it has boxes) and its class counts."""
    d = record.detections
    stats = {"detections_per_frame": float(len(d.xyxy))}
    if len(d):
        stats["mean_confidence"] = float(np.mean(d.confidence))
    return stats, Counter(d.class_name.tolist())
