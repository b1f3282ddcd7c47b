"""Edge-side decoding of an assembled frame: whatever prefix arrived, zero-filled, classified."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgebus.codecs.base import Codec
from edgebus.codecs.classifier import Classifier, softmax
from edgebus.codecs.errors import CodecError
from edgebus.codecs.pnc_wire import split_stream
from edgebus.nodes.assembler import PendingFrame
from edgebus.nodes.codec_choice import decoder_for


@dataclass(frozen=True, slots=True)
class Classified:
    top_k: list[int]
    scores: list[float]
    units_used: int


class FrameClassifier:
    """Decoders by (codec, model id, size), built on first use, and the strong classifier."""

    def __init__(self, classifier: Classifier, default_size: int) -> None:
        self.classifier = classifier
        self.default_size = default_size
        self._decoders: dict[tuple[str, str, int], Codec] = {}

    def _decoder(self, codec: str, model_id: str, size: int) -> Codec:
        key = (codec, model_id, size)
        if key not in self._decoders:
            self._decoders[key] = decoder_for(codec, model_id, size)
        return self._decoders[key]

    def classify_batch(self, frames: list[PendingFrame], k: int = 5) -> list[Classified | str]:
        """Decode each frame, then run the classifier once on the batch; a frame that cannot
        be decoded gets its one-line reason instead of a verdict."""
        decoded: list[tuple[np.ndarray, int] | str] = []
        for frame in frames:
            try:
                decoded.append(self._decode(frame))
            except CodecError as exc:
                decoded.append(str(exc))
        images = [d[0] for d in decoded if not isinstance(d, str)]
        probs = softmax(self.classifier.logits(np.stack(images))) if images else None
        out: list[Classified | str] = []
        row = 0
        for item in decoded:
            if isinstance(item, str):
                out.append(item)
                continue
            assert probs is not None
            order = np.argsort(-probs[row])[:k]
            out.append(
                Classified([int(i) for i in order], [float(probs[row][i]) for i in order], item[1])
            )
            row += 1
        return out

    def _decode(self, frame: PendingFrame) -> tuple[np.ndarray, int]:
        """Decode the contiguous prefix of chunks (a gap ends what may be used)."""
        size = frame.end.width if frame.end is not None and frame.end.width else self.default_size
        decoder = self._decoder(frame.codec, frame.model_id, size)
        data = b"".join(frame.ordered_chunks())
        if frame.codec == "pnc":
            units, _ = split_stream(data)  # a unit cut by the deadline is dropped whole
        else:
            units = [data] if data else []
        decoded = decoder.decode_frame(units)
        image = decoded.image
        if image.shape != (self.classifier.image_size, self.classifier.image_size, 3):
            raise CodecError(
                f"frame {frame.camera}/{frame.frame_id}: decoded {image.shape}, the classifier "
                f"takes {self.classifier.image_size}x{self.classifier.image_size}x3"
            )
        if frame.codec == "pnc":
            units_used = decoded.units_used
        else:  # a byte codec's one unit is its whole file
            end = frame.end
            whole = end is not None and len(frame.ordered_chunks()) == end.chunks_sent
            units_used = end.units_sent if whole and end is not None else 0
        return image, units_used
