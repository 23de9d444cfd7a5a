"""U-Nets (Ronneberger et al. 2015): the paper's U-Net (4 levels), U-Net-3 (2 levels) and Sim-U-Net.

One small class serves all three: `channels` lists the feature widths from the first level to the
bottleneck; upsampling is bilinear, as in the paper's code, so the bottleneck keeps the width of the
deepest skip connection.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .registry import register_model, scaled


def double_conv(c_in: int, c_out: int, c_mid: int | None = None) -> nn.Sequential:
    c_mid = c_mid or c_out
    return nn.Sequential(
        nn.Conv2d(c_in, c_mid, 3, padding=1, bias=False), nn.BatchNorm2d(c_mid), nn.ReLU(inplace=True),
        nn.Conv2d(c_mid, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder of `len(channels) - 1` poolings, bilinear decoder with skip connections.

    With bilinear upsampling the bottleneck has the width of the deepest skip (``channels[-1] ==
    channels[-2]``), and each decoder block halves the concatenated width, as in the paper's code.
    """

    def __init__(self, in_channels: int, classes: int, channels: list[int]):
        super().__init__()
        self.down = nn.ModuleList([double_conv(in_channels, channels[0])])
        self.down.extend(double_conv(a, b) for a, b in zip(channels[:-1], channels[1:]))
        self.up = nn.ModuleList()
        width = channels[-1]
        for level, skip in reversed(list(enumerate(channels[:-1]))):
            # Halve the concatenated width in the middle; the last level keeps the first width.
            out = skip if level == 0 else skip // 2
            self.up.append(double_conv(width + skip, out, (width + skip) // 2))
            width = out
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


@register_model("unet", family="cnn", paper_parameters_m=17.27, depth=4,
                description="U-Net, 4 poolings, 64-512 channels, bilinear upsampling")
def unet(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    return UNet(in_channels, classes, [scaled(c, width) for c in (64, 128, 256, 512, 512)])


@register_model("unet3", family="cnn", paper_parameters_m=1.04, depth=2,
                description="U-Net-3: a U-Net with 2 poolings, 64/128 channels")
def unet3(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    return UNet(in_channels, classes, [scaled(c, width) for c in (64, 128, 128)])


@register_model("sim_unet", family="cnn", paper_parameters_m=0.07, depth=2,
                description="Sim-U-Net: a U-Net with 2 poolings, 16/32 channels")
def sim_unet(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    return UNet(in_channels, classes, [scaled(c, width) for c in (16, 32, 32)])
