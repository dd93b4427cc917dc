"""Batch JPEG decoding on the GPU (nvJPEG through NVIDIA's nvImageCodec), as an option to libjpeg-turbo.

nvImageCodec (``nvidia-nvimgcodec-cu12``) rather than ``torchvision.io.decode_jpeg(device="cuda")``: it is
NVIDIA's maintained Python front end to nvJPEG, decodes a whole list of payloads in one call, uses the
hardware JPEG engine on GPUs that have one (A100, H100/H200), and does not pull the torch stack into a
worker that otherwise has no use for it. Imported lazily: CPU installs never load it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from inference.engines.cuda_probe import cuda_devices

log = logging.getLogger(__name__)

_INSTALL_HINT = "install the 'gpu' extra (pip install 'sightline[gpu]'), which brings nvidia-nvimgcodec-cu12"
# libjpeg-turbo (simplejpeg, OpenCV) upsamples chroma smoothly by default; nvJPEG's default is nearest,
# which differs by tens of levels on colour edges. Fancy upsampling needs CUDA >= 12.1.
_DECODER_OPTIONS = ":fancy_upsampling=1"

_decoders: dict[int, tuple[Any, threading.Lock]] = {}
_decoders_lock = threading.Lock()


class JpegDecodeError(ValueError):
    """Some payloads of the batch did not decode; ``indices`` says which (decode those on the CPU path)."""

    def __init__(self, indices: list[int]) -> None:
        super().__init__(f"nvJPEG could not decode payload(s) {indices}")
        self.indices = indices


def _nvimgcodec() -> Any:
    from nvidia import nvimgcodec

    return nvimgcodec


def available() -> tuple[bool, str]:
    """(True, "") when GPU JPEG decoding can run here, else (False, why not)."""
    try:
        _nvimgcodec()
    except ImportError:
        return False, f"nvImageCodec is not installed; {_INSTALL_HINT}"
    count, reason = cuda_devices()
    if count == 0:
        return False, reason
    return True, ""


def _decoder(device_id: int) -> tuple[Any, threading.Lock]:
    """One decoder per device, built once (it owns nvJPEG handles and buffers), used under a lock."""
    with _decoders_lock:
        if device_id not in _decoders:
            nvimgcodec = _nvimgcodec()
            kinds = ("HW_GPU_ONLY", "GPU_ONLY", "HYBRID_CPU_GPU")  # no CPU_ONLY: "nvjpeg" means the GPU
            backends = [
                nvimgcodec.Backend(getattr(nvimgcodec.BackendKind, kind))
                for kind in kinds
                if hasattr(nvimgcodec.BackendKind, kind)
            ]
            decoder = nvimgcodec.Decoder(device_id=device_id, backends=backends, options=_DECODER_OPTIONS)
            _decoders[device_id] = (decoder, threading.Lock())
        return _decoders[device_id]


def _to_bgr(image: Any) -> np.ndarray:
    rgb = np.asarray(image.cpu())
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"unexpected decoded image {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb[..., ::-1])


def _decode_one(decoder: Any, payload: bytes, params: Any) -> Any | None:
    try:
        return decoder.decode(payload, params=params)
    except Exception:  # nvImageCodec raises on an unparsable stream and returns None on a failed decode
        return None


def _rgb(nvimgcodec: Any) -> Any:
    """The RGB colour spec: ``ColorSpec.SRGB`` since nvImageCodec 0.7, ``ColorSpec.RGB`` before."""
    spec = nvimgcodec.ColorSpec
    return spec.SRGB if hasattr(spec, "SRGB") else spec.RGB


def decode_jpegs(payloads: Sequence[bytes], device_id: int = 0) -> list[np.ndarray]:
    """BGR uint8 HxWx3 images for ``payloads``, in order, decoded in one batch on GPU ``device_id``.

    Raises ``JpegDecodeError`` naming the payloads that failed, so the caller can send just those through
    its CPU path (which also produces the precise dead-letter reason).
    """
    if not payloads:
        return []
    nvimgcodec = _nvimgcodec()
    params = nvimgcodec.DecodeParams(
        apply_exif_orientation=False,  # camera frames: same pixels as the CPU decoder, no rotation
        color_spec=_rgb(nvimgcodec),
        allow_any_depth=False,
    )
    decoder, lock = _decoder(device_id)
    with lock:
        try:
            images = list(decoder.decode(list(payloads), params=params))
        except Exception:  # one unparsable payload fails the whole call; sorted out below
            images = []
        if len(images) != len(payloads) or any(image is None for image in images):
            # Older nvImageCodec drops failed images from the list instead of returning None in place,
            # so positions cannot be trusted: find the failures one by one (error path only).
            images = [_decode_one(decoder, payload, params) for payload in payloads]
            failed = [i for i, image in enumerate(images) if image is None]
            if failed:
                raise JpegDecodeError(failed)
        return [_to_bgr(image) for image in images]


def batch_jpeg_decoder(
    choice: str, device_id: int
) -> Callable[[list[bytes]], list[np.ndarray] | None] | None:
    """The batch JPEG decoder for ``jpeg_decoder: nvjpeg``, or None for libjpeg-turbo (also when
    nvJPEG is unusable here: said once in the log). The decoder answers None for a batch it
    cannot decode, which then goes to the CPU."""
    if choice != "nvjpeg":
        return None
    usable, why = available()
    if not usable:
        log.warning("nvJPEG unavailable (%s); decoding JPEG on the CPU", why)
        return None

    def decode(payloads: list[bytes]) -> list[np.ndarray] | None:
        try:
            return decode_jpegs(payloads, device_id)
        except JpegDecodeError:
            return None

    return decode
