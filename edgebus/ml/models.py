"""torch modules: the strong and weak classifiers and the PNC / fixed-rate autoencoder.

Every model takes float32 NCHW images in [0, 1]; the runtime converts uint8 HWC to that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgebus.ml.errors import TrainingError


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class StrongClassifier(nn.Module):
    """A compact VGG-style CNN standing in for the paper's EfficientNet-B0 at 64 px."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(3, w, 2),
            _conv(w, w),
            nn.MaxPool2d(2),
            _conv(w, 2 * w),
            _conv(2 * w, 2 * w),
            nn.MaxPool2d(2),
            _conv(2 * w, 4 * w),
            _conv(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class WeakClassifier(StrongClassifier):
    """The camera's model: the same layout at a quarter of the width (~1/16 of the compute),
    which lands 10-25 points of top-1 below the strong model."""

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__(num_classes, width)


CLASSIFIERS: dict[str, type[nn.Module]] = {"strong": StrongClassifier, "weak": WeakClassifier}


@dataclass(frozen=True)
class AEConfig:
    """Shape of an autoencoder: `channels` features of (size/stride)^2 values each.

    The paper's 224 px model has stride 7 (32x32 features); at 64 px stride 4 keeps a
    comparable bytes-per-pixel ratio while leaving the features big enough to classify.
    """

    image_size: int = 64
    channels: int = 10
    stride: int = 4
    hidden: int = 32
    decoder_width: int = 48

    def __post_init__(self) -> None:
        if self.stride not in (2, 4, 7, 8) or self.image_size % self.stride:
            raise TrainingError(
                f"autoencoder stride {self.stride}: expected 2, 4, 7 or 8 dividing the image "
                f"size {self.image_size}"
            )
        if not 1 <= self.channels <= 255:
            raise TrainingError(f"autoencoder channels: expected 1..255, got {self.channels}")

    @property
    def feature_size(self) -> int:
        return self.image_size // self.stride

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def _first_stride(stride: int) -> int:
    # The encoder has exactly two convolutions; split the total stride between them.
    return {2: 2, 4: 2, 7: 7, 8: 4}[stride]


class Encoder(nn.Module):
    """Two convolutions, output clipped to [0, 1] so it maps onto 0..255 for quantisation."""

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        s1 = _first_stride(cfg.stride)
        s2 = cfg.stride // s1
        k1 = max(3, s1 + (s1 % 2 == 0))
        self.conv1 = nn.Conv2d(3, cfg.hidden, k1, stride=s1, padding=k1 // 2 if s1 < 7 else 0)
        self.conv2 = nn.Conv2d(cfg.hidden, cfg.channels, 3, stride=s2, padding=1)
        self.act = nn.ReLU(inplace=True)
        # Start mid-range: a clip has no gradient outside [0, 1], and features that begin
        # saturated stay dead for good.
        assert self.conv2.bias is not None  # nn.Conv2d has one unless bias=False
        nn.init.constant_(self.conv2.bias, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.conv2(self.act(self.conv1(x))), 0.0, 1.0)


# Upsampling factors of the decoder's two transposed convolutions for each total stride.
_UPSAMPLE = {2: (1, 2), 4: (2, 2), 7: (7, 1), 8: (4, 2)}


class Decoder(nn.Module):
    """Five layers back to the image; the last clips by value (the paper found this better
    than a sigmoid or tanh)."""

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        w = cfg.decoder_width
        first, second = _UPSAMPLE[cfg.stride]
        ups: list[nn.Module] = [
            nn.ConvTranspose2d(w, w, first, stride=first)
            if first > 1
            else nn.Conv2d(w, w, 3, padding=1),
            nn.ConvTranspose2d(w, w // 3, second, stride=second)
            if second > 1
            else nn.Conv2d(w, w // 3, 3, padding=1),
        ]
        # Full-resolution layers are the cost of the decoder, so they stay narrow.
        mid = w // 3
        self.layers = nn.Sequential(
            nn.Conv2d(cfg.channels, w, 3, padding=1),
            nn.ReLU(inplace=True),
            ups[0],
            nn.ReLU(inplace=True),
            ups[1],
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, 3, 3, padding=1),
        )
        last = self.layers[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, 0.5)  # mid-grey start, inside the clip's range

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.layers(z), 0.0, 1.0)


class AutoEncoder(nn.Module):
    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)


def quantise_features(z: torch.Tensor, levels: int = 64) -> torch.Tensor:
    """Round to `levels` steps with a straight-through gradient, so training sees the same
    6-bit features the wire carries."""
    q = torch.round(z * (levels - 1)) / (levels - 1)
    return z + (q - z).detach()
