"""ONNX export with a parity check against torch, and int8 quantisation of encoders."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgebus.ml.errors import TrainingError

OPSET = 17


def export_onnx(
    model: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    output_name: str,
    atol: float = 1e-4,
) -> float:
    """Export with a dynamic batch axis and return the max |torch - onnxruntime| on `example`;
    a gap above `atol` is an export bug, so it raises."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated upstream but is the one that needs no extra
        # packages; its notices are not actionable here.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        expected = model(example).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {input_name: example.numpy()})[0]
    gap = float(np.abs(got - expected).max())
    if gap > atol:
        raise TrainingError(f"ONNX export {path}: torch and onnxruntime differ by {gap:.2e}")
    return gap


class _Calibration(CalibrationDataReader):
    def __init__(self, input_name: str, samples: np.ndarray, batch: int = 16) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = (
            {input_name: samples[i : i + batch]} for i in range(0, len(samples), batch)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantise_int8(
    fp32_path: Path, int8_path: Path, input_name: str, calibration: np.ndarray
) -> None:
    """Static int8 (QDQ) quantisation calibrated on training images, like the paper's uint8
    TFLite encoder."""
    prepped = int8_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(prepped),
            str(int8_path),
            _Calibration(input_name, calibration.astype(np.float32)),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        prepped.unlink(missing_ok=True)
