"""Inference worker settings, modelled on Triton's batching knobs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from pydantic import Field

from streams.settings import Section, StreamsConfig

Freshness = Literal["complete", "realtime"]


class InferenceSettings(Section):
    model: str = "nanodet-m"
    # Empty means "follow the promoted version in the registry".
    model_version: str | None = None
    registry_dir: Path = Path(".sightline/models")
    engine: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    provider: Literal["cpu", "cuda", "tensorrt"] = "cpu"
    threads: int = Field(2, ge=1, description="ONNX Runtime intra-op threads.")
    # Measured on 2 cores (docs/benchmarks.md): off saves a little CPU for the other stages but slows
    # the engine's own runs (YOLO11n raw -10-15%); neither won consistently, so ORT's default stays.
    cpu_spin: bool = Field(True, description="ONNX Runtime CPU threads spin while idle between runs.")
    # A batch closes at `max_batch` frames or `max_wait_ms` after its first frame, or at once when
    # `close_when_idle` and no batch is lined up for the model (Triton's dynamic batcher likewise
    # hands an idle instance whatever is queued): light load gets small, early batches, and under
    # load a batch is always lined up, so batches fill up.
    max_batch: int = Field(4, ge=1, le=256)
    max_wait_ms: float = Field(20.0, ge=0)
    close_when_idle: bool = Field(
        True, description="Close a batch before it is full when the model would otherwise sit idle."
    )
    # Closed batches that may wait before each pipeline stage (prepare, engine, finish): room to absorb
    # jitter between the stages. A realtime camera's frames are checked for age when prepared,
    # counting the batches still ahead of them, so a deeper pipeline skips more instead of aging them.
    pipeline_depth: int = Field(2, ge=1, le=8)
    score_threshold: float | None = Field(None, ge=0, le=1, description="None uses the model manifest's.")
    nms_iou: float | None = Field(None, gt=0, le=1)
    tracking: bool = True
    # A camera silent this long loses its tracker (memory); its next frame starts new tracks.
    tracker_idle_ttl_s: float = Field(600.0, gt=0)
    group_id: str = "sightline-inference"
    delivery: Literal["at-least-once", "exactly-once"] = "at-least-once"
    # Frames from cameras not listed under `cameras:` go to the dead-letter topic when true.
    reject_unknown_cameras: bool = False
    # Freshness (per camera, `cameras[].freshness`): `complete` runs every frame in order; `realtime`
    # skips a frame older than the camera's `max_age_ms` when the worker takes it, and publishes a
    # record saying so. Live sources default to realtime, files to complete; cameras not listed
    # under `cameras:` get `unknown_camera_freshness`.
    unknown_camera_freshness: Freshness = "complete"
    max_frame_age_ms: float = Field(
        800.0, gt=0, description="Default max age of a realtime camera's frame when the worker takes it."
    )
    # At-least-once: partitions pause while this many batches wait for Kafka's acks (bounds memory).
    max_in_flight_batches: int = Field(8, ge=1)
    # Exactly-once: one transaction covers every batch finished within this interval (a transaction
    # costs a few broker round trips whatever it holds; longer = faster, but later detections).
    transaction_interval_ms: float = Field(100.0, ge=0, le=5_000)
    model_poll_s: float = Field(2.0, gt=0, description="How often workers check for a promoted model.")
    # GPU knobs: used by provider cuda/tensorrt, engine tensorrt and jpeg_decoder nvjpeg; ignored on CPU.
    device_id: int = Field(0, ge=0, description="CUDA device for the engine and the nvJPEG decoder.")
    fp16: bool = Field(
        True, description="TensorRT (native or ORT's EP) may pick fp16 kernels; I/O stays fp32."
    )
    engine_max_batch: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Largest batch of the GPU engine's profile (min 1, opt = max); None = max_batch.",
    )
    engine_cache_dir: Path | None = Field(
        None, description="TensorRT plan and timing cache; None = $SIGHTLINE_TRT_CACHE or .cache/trt."
    )
    # nvjpeg decodes a batch's JPEGs on the GPU (inference.gpu_jpeg, extra 'gpu'); cpu is libjpeg-turbo.
    jpeg_decoder: Literal["cpu", "nvjpeg"] = "cpu"


class CameraId(Protocol):
    """All the worker knows of a configured camera: its id and freshness (the decoders own the rest)."""

    @property
    def id(self) -> str: ...
    @property
    def freshness_policy(self) -> Freshness: ...
    @property
    def max_age_ms(self) -> float | None: ...


class WorkerConfig(StreamsConfig, Protocol):
    """The sections an inference worker reads."""

    @property
    def inference(self) -> InferenceSettings: ...
    @property
    def cameras(self) -> Sequence[CameraId]: ...
