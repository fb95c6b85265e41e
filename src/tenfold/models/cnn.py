"""Small image classifiers for 28x28 / 32x32 inputs: a GroupNorm CNN (FL-friendly: no batch stats), LeNet-5 and an
MLP."""

from __future__ import annotations

import torch
from torch import nn

SIZES = {"debug": (8, 16, 32), "small": (32, 64, 128), "base": (64, 128, 256)}


class GNConvNet(nn.Module):
    """Three conv blocks (conv3x3 -> GroupNorm -> ReLU -> maxpool) and a linear head.

    Parameters
    ----------
    in_channels : int, default=1
    n_classes : int, default=10
    size : {"debug", "small", "base"}, default="small"
        Channel widths per block: debug (8, 16, 32), small (32, 64, 128), base (64, 128, 256).

    Input (B, C, H, W) with H = W in {28, 32}; output logits (B, n_classes).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, size: str = "small"):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"Invalid size: {size!r}; expected one of {', '.join(SIZES)}")
        widths = SIZES[size]
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.GroupNorm(min(8, w // 4), w), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU] * len(hidden) -> Linear."""

    def __init__(self, in_features: int, n_classes: int, hidden: tuple[int, ...] = (256, 128)):
        super().__init__()
        dims = (in_features, *hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: conv5x5(6) -> pool -> conv5x5(16) -> pool -> 120 -> 84
    -> n_classes; 61.7k parameters for 28x28 inputs.

    Big enough to fit 5-12k Fashion-MNIST images almost perfectly within 30-40 epochs, so that cross-entropy over-fits
    the NLL and becomes over-confident (fitted temperature > 1), the regime of the calibration-loss literature; and
    cheap enough on a CPU (about 60 microseconds per image for a training step on 2 threads).

    With ``norm_groups`` > 0 each convolution is followed by ``GroupNorm(norm_groups, channels)`` (61,750 parameters
    at 2 groups): the federated variant, with no batch statistics, as FL-Simulator's GroupNorm ResNet-18 (which
    replaces every BatchNorm by GroupNorm with 2 groups).

    Parameters
    ----------
    in_channels : int, default=1
    n_classes : int, default=10
    size : {28, 32}, default=28
        Input height = width.
    norm_groups : int, default=0
        0 = no normalisation (the classic net, same state-dict keys as before); else GroupNorm groups, dividing 6.

    Input (B, C, 28, 28) or (B, C, 32, 32); output logits (B, n_classes).

    Examples
    --------
    >>> sum(p.numel() for p in LeNet5(norm_groups=2).parameters())
    61750
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, size: int = 28, norm_groups: int = 0):
        super().__init__()
        if size not in (28, 32):
            raise ValueError(f"Invalid size: {size!r}; expected 28 or 32 (input height = width)")
        if norm_groups < 0 or (norm_groups and (6 % norm_groups or 16 % norm_groups)):
            raise ValueError(f"Invalid norm_groups: {norm_groups!r}; expected 0 (none), 1 or 2 (dividing 6 and 16)")

        def norm(c: int) -> list[nn.Module]:
            return [nn.GroupNorm(norm_groups, c)] if norm_groups else []

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2 if size == 28 else 0), *norm(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), *norm(16), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84),
                                        nn.ReLU(), nn.Linear(84, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
