"""Engine constructor options from the inference settings, in one place for the worker, batch and bench."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.settings import InferenceSettings


def engine_options(
    settings: InferenceSettings, kind: str, *, threads: int | None = None, max_batch: int | None = None
) -> dict[str, Any]:
    """Options for ``make_engine(kind, path, **options)``.

    CPU keeps ORT's own batch limit (the detector chunks batches anyway). GPU kinds get the device,
    precision, plan cache and a TensorRT profile wide enough for ``max_batch`` (a caller's override, such
    as ``sightline batch --max-batch``, else the settings') unless ``engine_max_batch`` says otherwise.
    """
    options: dict[str, Any] = {"threads": threads or settings.threads, "spin": settings.cpu_spin}
    if kind == "cpu":
        return options
    wanted = max_batch or settings.max_batch
    return options | {
        "device_id": settings.device_id,
        "fp16": settings.fp16,
        "cache_dir": settings.engine_cache_dir,
        "max_batch": settings.engine_max_batch or wanted,
    }
