"""One small adapter for runtime inference: onnxruntime by default, a TFLite interpreter when
one is installed and the model is a `.tflite` file."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgebus.codecs.errors import ModelFileError

DEFAULT_THREADS = 1  # single-threaded by default so timings compare with the paper's Pi


class InferenceSession:
    """Runs a model with one float32 input and returns its first output."""

    def __init__(self, path: str | Path, threads: int = DEFAULT_THREADS) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"model file {self.path}: not found")
        if self.path.suffix == ".tflite":
            self._backend: _Backend = _TFLite(self.path, threads)
        else:
            self._backend = _OnnxRuntime(self.path, threads)

    @property
    def input_name(self) -> str:
        return self._backend.input_name

    @property
    def input_shape(self) -> list[Any]:
        return self._backend.input_shape

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._backend.run(np.ascontiguousarray(x, dtype=np.float32))


class _Backend:
    input_name: str
    input_shape: list[Any]

    def run(self, x: np.ndarray) -> np.ndarray:
        raise ModelFileError("inference backend: no model loaded")


class _OnnxRuntime(_Backend):
    def __init__(self, path: Path, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for bad files
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFileError(
                f"model file {path}: not a loadable ONNX model ({first})"
            ) from None
        inp = self._session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        self._output = self._session.get_outputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self.input_name: x})[0]


class _TFLite(_Backend):
    def __init__(self, path: Path, threads: int) -> None:
        interpreter_cls = None
        for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
            try:
                interpreter_cls = importlib.import_module(module).Interpreter
                break
            except ImportError:
                continue
        if interpreter_cls is None:
            raise ModelFileError(
                f"model file {path}: a .tflite model needs ai-edge-litert or tflite-runtime"
            )
        try:
            self._interp = interpreter_cls(model_path=str(path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(
                f"model file {path}: not a loadable TFLite model ({exc})"
            ) from None
        detail = self._interp.get_input_details()[0]
        self._input_index = detail["index"]
        self.input_name = detail["name"]
        self.input_shape = list(detail["shape"])
        self._output_index = self._interp.get_output_details()[0]["index"]

    def run(self, x: np.ndarray) -> np.ndarray:
        if list(x.shape) != self.input_shape:
            self._interp.resize_tensor_input(self._input_index, list(x.shape))
            self._interp.allocate_tensors()
            self.input_shape = list(x.shape)
        self._interp.set_tensor(self._input_index, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._output_index)
