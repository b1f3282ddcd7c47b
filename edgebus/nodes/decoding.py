"""Edge-side decoding of an assembled frame: whatever prefix arrived, zero-filled, classified."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgebus.codecs.base import Codec
from edgebus.codecs.classifier import Classifier, softmax
from edgebus.codecs.errors import CodecError
from edgebus.nodes.assembler import PendingFrame
from edgebus.nodes.codec_choice import decoder_for


@dataclass(frozen=True, slots=True)
class Classified:
    top_k: list[int]
    scores: list[float]
    units_used: int
    names: list[str] = field(default_factory=list)  # of top_k, where the classifier names them


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
        decoded = self._decode_all(frames)
        images = [d[0] for d in decoded if not isinstance(d, str)]
        probs = softmax(self.classifier.logits(np.stack(images))) if images else None
        out: list[Classified | str] = []
        row = 0
        for item in decoded:
            if isinstance(item, str):
                out.append(item)
                continue
            assert probs is not None
            order = [int(i) for i in np.argsort(-probs[row])[:k]]
            scores = [float(probs[row][i]) for i in order]
            names = [self.classifier.class_names[i] for i in order]
            out.append(Classified(order, scores, item[1], names))
            row += 1
        return out

    def _decode_all(self, frames: list[PendingFrame]) -> list[tuple[np.ndarray, int] | str]:
        """Decoded images and units used, or a one-line reason per frame. The frames of one
        decoder go to it as one batch (`Codec.decode_batch`)."""
        out: list[tuple[np.ndarray, int] | str] = [""] * len(frames)
        groups: dict[int, tuple[Codec, list[int]]] = {}
        for i, frame in enumerate(frames):
            try:
                decoder = self._decoder(frame.codec, frame.model_id, self._size(frame))
            except CodecError as exc:
                out[i] = str(exc)
                continue
            groups.setdefault(id(decoder), (decoder, []))[1].append(i)
        for decoder, indices in groups.values():
            streams = [b"".join(frames[i].ordered_chunks()) for i in indices]
            for i, decoded in zip(indices, decoder.decode_batch(streams), strict=True):
                if isinstance(decoded, CodecError):
                    out[i] = str(decoded)
                    continue
                try:
                    image = self._checked(frames[i], decoded.image)
                except CodecError as exc:
                    out[i] = str(exc)
                    continue
                out[i] = image, self._units_used(frames[i], decoder, decoded.units_used)
        return out

    @staticmethod
    def _units_used(frame: PendingFrame, decoder: Codec, decoded_units: int) -> int:
        """Features for a unit-stream codec; a file format's one unit counts only if every
        chunk of it came (a cut file may still decode, progressively)."""
        if decoder.unit_stream:
            return decoded_units
        end = frame.end
        whole = end is not None and len(frame.ordered_chunks()) == end.chunks_sent
        return end.units_sent if whole and end is not None else 0

    def _size(self, frame: PendingFrame) -> int:
        end = frame.end
        return end.width if end is not None and end.width else self.default_size

    def _checked(self, frame: PendingFrame, image: np.ndarray) -> np.ndarray:
        if image.shape != (self.classifier.image_size, self.classifier.image_size, 3):
            raise CodecError(
                f"frame {frame.camera}/{frame.frame_id}: decoded {image.shape}, the classifier "
                f"takes {self.classifier.image_size}x{self.classifier.image_size}x3"
            )
        return image
