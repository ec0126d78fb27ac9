"""BasicNet, the study's 3D residual encoder–decoder with deep supervision (§2.4), and MONAI's 3D
ResNets as comparison backbones (Table 4), each giving a lesion's deep-feature vector.

BasicNet's residual blocks are MONAI's, written out in plain PyTorch (same layers, parameter
names and initialisation order; the tests check them against MONAI's bit for bit), so that using
a network does not import MONAI (about 1 s and 60 MB per process).

DCU-Net and S-Net, the study's other comparisons, are not built: neither has a published 3D
classification architecture precise enough to reproduce (no reference implementation or layer
table), and guessing one would compare against a model of our own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from BoneOligoMetLib.errors import ArchitectureError, did_you_mean

BASICNET_CHANNELS = (16, 32, 64, 112, 224)
RESNETS = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101")
ARCHITECTURES = ("basicnet", *RESNETS)
NORMS = {"batch": nn.BatchNorm3d, "instance": nn.InstanceNorm3d}  # MONAI's names, defaults


class _Convolution(nn.Sequential):
    """MONAI's ``Convolution`` as ``get_conv_layer`` makes it here (no activation, norm or
    dropout): a ``conv`` of stride 1 padded to keep the size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.add_module(
            "conv",
            nn.Conv3d(in_channels, out_channels, kernel_size, 1, (kernel_size - 1) // 2, bias=bias),
        )


class ResBlock(nn.Module):
    """MONAI's ``UnetResBlock`` (3D, kernel 3, stride 1, leaky ReLU 0.01): conv, norm, ReLU,
    conv, norm, plus the input (through a 1×1×1 conv and norm when the channels change), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ArchitectureError(
                f"norm {norm!r}: choose {' or '.join(NORMS)}{did_you_mean(norm, NORMS)}"
            )
        self.conv1 = _Convolution(in_channels, out_channels, 3, bias=False)
        self.conv2 = _Convolution(out_channels, out_channels, 3, bias=False)
        self.lrelu = nn.LeakyReLU(negative_slope=0.01, inplace=True)
        self.norm1 = NORMS[norm](out_channels)
        self.norm2 = NORMS[norm](out_channels)
        self.downsample = in_channels != out_channels
        if self.downsample:
            self.conv3 = _Convolution(in_channels, out_channels, 1, bias=False)
            self.norm3 = NORMS[norm](out_channels)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        residual = inp
        out = self.lrelu(self.norm1(self.conv1(inp)))
        out = self.norm2(self.conv2(out))
        if self.downsample:
            residual = self.norm3(self.conv3(residual))
        out += residual
        return self.lrelu(out)


class OutBlock(nn.Module):
    """MONAI's ``UnetOutBlock``: a 1×1×1 convolution with bias."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = _Convolution(in_channels, out_channels, 1, bias=True)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.conv(inp)


def _block(in_channels: int, out_channels: int, norm: str) -> nn.Module:
    return ResBlock(in_channels, out_channels, norm)


class BasicNet(nn.Module):
    """3D residual encoder–decoder with deep supervision and a classification head.

    The study's BasicNet: lightweight, about 4.2 M parameters, one network per modality; the deep
    features are the encoder's penultimate max pooling, pooled to a vector. Ours is built from
    MONAI's residual blocks (``UnetResBlock``: two 3×3×3 convolutions with a shortcut):

    - encoder: a residual block per level, channels ``(16, 32, 64, 112, 224)`` by default, with
      a 2×2×2 max pooling between levels (4 poolings: the patch side must be divisible by 16);
    - decoder: trilinear upsampling, a 1×1×1 channel reduction, concatenation with the encoder's
      skip and a residual block per level; a 1×1×1 lesion-mask head at every level (deep
      supervision at 1/8, 1/4, 1/2 and full size);
    - classification: global average pooling of the bottleneck, dropout, a linear layer to 2
      logits (benign, malignant).

    The default has 4.34 M parameters (``count_parameters``). Batch, not instance,
    normalisation: a PET patch's absolute SUV level is information the net must keep.

    ``forward(x)`` takes a (batch, in_channels, D, H, W) patch and returns a dict: ``logits``
    (batch, 2), ``segmentation`` (list of lesion-mask logit maps, full size first, then 1/2, 1/4,
    1/8) and ``features`` (batch, channels[-3]): the penultimate max pooling, average-pooled.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = BASICNET_CHANNELS,
        num_classes: int = 2,
        dropout: float = 0.3,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 3 or min(channels) < 1:
            raise ArchitectureError(f"BasicNet needs ≥ 3 positive channel counts, got {channels}")
        self.channels = channels
        self.levels = len(channels)
        self.encoder = nn.ModuleList(
            _block(in_channels if i == 0 else channels[i - 1], c, norm)
            for i, c in enumerate(channels)
        )
        self.pool = nn.MaxPool3d(2)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        # decoder level i (from the bottleneck up) goes from channels[i+1] to channels[i]
        self.reduce = nn.ModuleList(
            nn.Conv3d(channels[i + 1], channels[i], kernel_size=1) for i in range(self.levels - 1)
        )
        self.decoder = nn.ModuleList(
            _block(2 * channels[i], channels[i], norm) for i in range(self.levels - 1)
        )
        self.heads = nn.ModuleList(OutBlock(channels[i], 1) for i in range(self.levels - 1))
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels[-1], num_classes),
        )

    @property
    def feature_size(self) -> int:
        return self.channels[-3]

    def _encode(self, x: torch.Tensor, stop_at_features: bool = False):
        skips = []
        features = None
        for level, block in enumerate(self.encoder):
            if level > 0:
                x = self.pool(x)
                if level == self.levels - 2:  # the penultimate max pooling's output
                    features = x
                    if stop_at_features:
                        return skips, x, features
            x = block(x)
            skips.append(x)
        return skips, x, features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep-feature vector (batch, feature_size); runs only the encoder's first levels."""
        _, _, features = self._encode(x, stop_at_features=True)
        return features.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        skips, x, features = self._encode(x)
        logits = self.classifier(x)
        segmentation = []
        for i in reversed(range(self.levels - 1)):
            x = self.decoder[i](torch.cat([self.reduce[i](self.up(x)), skips[i]], dim=1))
            segmentation.append(self.heads[i](x))
        return {
            "logits": logits,
            "segmentation": segmentation[::-1],  # full size first
            "features": features.mean(dim=(2, 3, 4)),
        }


class ResNetClassifier(nn.Module):
    """MONAI's 3D ResNet with the same output dict as BasicNet (no segmentation heads)."""

    def __init__(self, name: str, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        from monai.networks import nets

        self.net = getattr(nets, name)(
            spatial_dims=3, n_input_channels=in_channels, num_classes=num_classes
        )

    @property
    def feature_size(self) -> int:
        return int(self.net.fc.in_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.maxpool(net.act(net.bn1(net.conv1(x))))
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = layer(x)
        return net.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        features = self.features(x)
        return {"logits": self.net.fc(features), "segmentation": [], "features": features}


def build_network(architecture: str = "basicnet", **options: Any) -> nn.Module:
    """A network by name: ``basicnet`` (options: channels, dropout, in_channels) or one of
    MONAI's 3D ResNets (``resnet10`` … ``resnet101``)."""
    if architecture == "basicnet":
        return BasicNet(**options)
    if architecture in RESNETS:
        unknown = set(options) - {"in_channels"}
        if unknown:
            raise ArchitectureError(f"{architecture}: unknown option(s) {sorted(unknown)}")
        return ResNetClassifier(architecture, **options)
    raise ArchitectureError(
        f"unknown network {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        f"{did_you_mean(architecture, ARCHITECTURES)}"
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
