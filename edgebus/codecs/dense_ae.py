"""Run-time dense autoencoder codec of the QoS pool (numpy + onnxruntime, no torch).

Byte format of one frame: the d latent values as little-endian float16 (2d bytes); the
model that produced them travels as the frame's model_id, never inside these bytes.
ECO classifies the latent with its head; ECCD decodes it, then classifies the
reconstruction. CO frames are the raw features (uint8 images or float16 windows).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from edgebus.codecs.errors import ModelFileError
from edgebus.messages import ModelBundle

LATENT_DTYPE = np.dtype("<f2")


def _session(model_id: str, name: str, data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for bad files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(
            f"model {model_id}: {name} is not a loadable ONNX model ({first})"
        ) from None


class DenseAECodec:
    def __init__(self, model_id: str, configuration: str, files: dict[str, bytes]) -> None:
        needed = {"ECO": ("encoder.onnx", "head.onnx"),
                  "ECCD": ("encoder.onnx", "decoder.onnx", "classifier.onnx")}  # fmt: skip
        if configuration not in needed:
            raise ModelFileError(
                f"model {model_id}: configuration {configuration!r} is not ECO or ECCD"
            )
        missing = [name for name in needed[configuration] if name not in files]
        if missing:
            raise ModelFileError(f"model {model_id}: bundle lacks {', '.join(missing)}")
        self.model_id = model_id
        self.configuration = configuration
        self._sessions = {
            name: _session(model_id, name, files[name]) for name in needed[configuration]
        }
        self.latent_dim = int(self._sessions["encoder.onnx"].get_outputs()[0].shape[1])

    @classmethod
    def from_bundle(cls, bundle: ModelBundle) -> DenseAECodec:
        return cls(bundle.model_id, bundle.configuration, bundle.files)

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        session = self._sessions[name]
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
        return session.run(None, feed)[0]

    def latent(self, x: np.ndarray) -> np.ndarray:
        """(N, D) float32 -> (N, d) float32, before the float16 cast of the wire."""
        return self._run("encoder.onnx", np.atleast_2d(x))

    def encode(self, x: np.ndarray) -> bytes:
        """One frame (D,) to its wire bytes."""
        return self.latent(x)[0].astype(LATENT_DTYPE).tobytes()

    def unpack(self, data: bytes) -> np.ndarray:
        if len(data) != 2 * self.latent_dim:
            raise ModelFileError(
                f"model {self.model_id}: frame of {len(data)} bytes, expected {2 * self.latent_dim}"
            )
        return np.frombuffer(data, LATENT_DTYPE).astype(np.float32)[None, :]

    def reconstruct(self, data: bytes) -> np.ndarray:
        if self.configuration != "ECCD":
            raise ModelFileError(f"model {self.model_id}: ECO models carry no decoder")
        return self._run("decoder.onnx", self.unpack(data))[0]

    def classify(self, data: bytes) -> np.ndarray:
        """Class scores (logits) of one frame, the cloud's job in ECO and ECCD."""
        z = self.unpack(data)
        if self.configuration == "ECO":
            return self._run("head.onnx", z)[0]
        return self._run("classifier.onnx", self._run("decoder.onnx", z))[0]
