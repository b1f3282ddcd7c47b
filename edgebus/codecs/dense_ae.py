"""Run-time dense autoencoder codec of the QoS pool (numpy + onnxruntime, no torch).

Byte format of one frame: the d latent values as little-endian float16 (2d bytes); the
model that produced them travels as the frame's model_id, never inside these bytes.
ECO classifies the latent with its head; ECCD decodes it, then classifies the
reconstruction. CO frames are the raw features (`raw_encode`: uint8 images or float16
windows), classified by the pool's CO classifier (model "raw").
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from edgebus.codecs.errors import ModelFileError
from edgebus.messages import ModelBundle

LATENT_DTYPE = np.dtype("<f2")
NEEDED_FILES = {
    "CO": ("classifier.onnx",),
    "ECO": ("encoder.onnx", "head.onnx"),
    "ECCD": ("encoder.onnx", "decoder.onnx", "classifier.onnx"),
}


def raw_encode(x: np.ndarray, item_bytes: int) -> bytes:
    """CO's byte format: images in [0, 1] as uint8 (1 byte per pixel), sensor windows as
    little-endian float16 (2 bytes per value)."""
    if item_bytes == 1:
        return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8).tobytes()
    return np.asarray(x, dtype=LATENT_DTYPE).tobytes()


def raw_decode(data: bytes, item_bytes: int) -> np.ndarray:
    """The float32 features of CO bytes (the inverse of `raw_encode`, up to rounding)."""
    if item_bytes == 1:
        return np.frombuffer(data, np.uint8).astype(np.float32) / 255.0
    return np.frombuffer(data, LATENT_DTYPE).astype(np.float32)


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
    """One pool model at run time: ECO or ECCD (latent frames), or CO (raw frames, with the
    pool's cloud-only classifier; `raw_item_bytes` says their byte format)."""

    def __init__(
        self, model_id: str, configuration: str, files: dict[str, bytes], raw_item_bytes: int = 0
    ) -> None:
        if configuration not in NEEDED_FILES:
            raise ModelFileError(
                f"model {model_id}: configuration {configuration!r} is not CO, ECO or ECCD"
            )
        missing = [name for name in NEEDED_FILES[configuration] if name not in files]
        if missing:
            raise ModelFileError(f"model {model_id}: bundle lacks {', '.join(missing)}")
        if configuration == "CO" and raw_item_bytes not in (1, 2):
            raise ModelFileError(
                f"model {model_id}: a CO model needs raw_item_bytes 1 or 2, got {raw_item_bytes}"
            )
        self.model_id = model_id
        self.configuration = configuration
        self.raw_item_bytes = raw_item_bytes
        self._sessions = {
            name: _session(model_id, name, files[name]) for name in NEEDED_FILES[configuration]
        }
        if configuration == "CO":
            self.latent_dim = int(self._sessions["classifier.onnx"].get_inputs()[0].shape[1])
            self.input_dim = self.latent_dim
        else:
            self.latent_dim = int(self._sessions["encoder.onnx"].get_outputs()[0].shape[1])
            self.input_dim = int(self._sessions["encoder.onnx"].get_inputs()[0].shape[1])

    @classmethod
    def from_bundle(cls, bundle: ModelBundle) -> DenseAECodec:
        item_bytes = bundle.meta.get("raw_item_bytes", 0)
        return cls(
            bundle.model_id, bundle.configuration, bundle.files,
            item_bytes if isinstance(item_bytes, int) else 0,
        )  # fmt: skip

    @property
    def frame_bytes(self) -> int:
        """The size of one frame on the wire."""
        item = self.raw_item_bytes if self.configuration == "CO" else LATENT_DTYPE.itemsize
        return item * self.latent_dim

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        session = self._sessions[name]
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
        return session.run(None, feed)[0]

    def latent(self, x: np.ndarray) -> np.ndarray:
        """(N, D) float32 -> (N, d) float32, before the float16 cast of the wire."""
        return self._run("encoder.onnx", np.atleast_2d(x))

    def encode(self, x: np.ndarray) -> bytes:
        """One frame (D,) to its wire bytes."""
        if self.configuration == "CO":
            return raw_encode(x, self.raw_item_bytes)
        return self.latent(x)[0].astype(LATENT_DTYPE).tobytes()

    def unpack(self, data: bytes) -> np.ndarray:
        if len(data) != self.frame_bytes:
            raise ModelFileError(
                f"model {self.model_id}: frame of {len(data)} bytes, expected {self.frame_bytes}"
            )
        if self.configuration == "CO":
            return raw_decode(data, self.raw_item_bytes)[None, :]
        return np.frombuffer(data, LATENT_DTYPE).astype(np.float32)[None, :]

    def reconstruct(self, data: bytes) -> np.ndarray:
        if self.configuration != "ECCD":
            raise ModelFileError(f"model {self.model_id}: ECO models carry no decoder")
        return self._run("decoder.onnx", self.unpack(data))[0]

    def classify(self, data: bytes) -> np.ndarray:
        """Class scores (logits) of one frame, the cloud's job in ECO and ECCD."""
        z = self.unpack(data)
        if self.configuration == "CO":
            return self._run("classifier.onnx", z)[0]
        if self.configuration == "ECO":
            return self._run("head.onnx", z)[0]
        return self.classify_reconstruction(self._run("decoder.onnx", z)[0])

    def classify_reconstruction(self, x_hat: np.ndarray) -> np.ndarray:
        """ECCD's classifier alone on a decoded frame (D,), so decode and classify can be
        timed apart (Eq. 7's D_t and C_t)."""
        if self.configuration != "ECCD":
            raise ModelFileError(f"model {self.model_id}: only ECCD classifies reconstructions")
        return self._run("classifier.onnx", np.atleast_2d(x_hat))[0]
