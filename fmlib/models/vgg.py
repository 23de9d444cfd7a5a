"""VGG16-based models: FCN (Long et al. 2015) and SegNet (Badrinarayanan et al. 2017).

Both use the VGG16 layout (five stages of 3x3 convolutions, 64-512 channels) built with
torchvision's `make_layers`, with batch normalization, which training from scratch needs. torchvision
is imported where the layers are built: its import loads ``torch._dynamo``, seconds that every
notebook kernel and command would pay for models most of them never build.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .bpda import unpool
from .registry import register_model, scaled

VGG16 = (2, 2, 3, 3, 3)          # convolutions per stage
VGG16_WIDTHS = (64, 128, 256, 512, 512)


def make_layers(widths: list[int], batch_norm: bool = True) -> nn.Sequential:
    """torchvision's VGG `make_layers` (3x3 convolutions of `widths` channels, from 3 input channels)."""
    from torchvision.models.vgg import make_layers as torchvision_make_layers  # noqa: PLC0415 (lazily: docstring)

    return torchvision_make_layers(widths, batch_norm=batch_norm)


def vgg16_stages(in_channels: int, width: float) -> tuple[nn.ModuleList, list[int]]:
    """The five VGG16-BN stages (without their pooling), first convolution taking `in_channels`."""
    widths = [scaled(c, width) for c in VGG16_WIDTHS]
    stages, c_in = nn.ModuleList(), in_channels
    for n_convs, c in zip(VGG16, widths):
        layers = make_layers([c] * n_convs, batch_norm=True)  # make_layers assumes 3 input channels
        layers[0] = nn.Conv2d(c_in, c, 3, padding=1)
        stages.append(layers)
        c_in = c
    return stages, widths


class FCN(nn.Module):
    """VGG16 encoder; a decoder of transposed convolutions that adds the encoder's output at every
    stage (the FCN-8s skip idea carried to all stages, as in the paper's code)."""

    def __init__(self, in_channels: int, classes: int, width: float):
        super().__init__()
        self.stages, widths = vgg16_stages(in_channels, width)
        outs = [widths[3], widths[2], widths[1], widths[0], scaled(32, width)]
        self.decoder = nn.ModuleList()
        c_in = widths[4]
        for c in outs:
            self.decoder.append(nn.Sequential(
                nn.ConvTranspose2d(c_in, c, 3, stride=2, padding=1, output_padding=1),
                nn.ReLU(inplace=True), nn.BatchNorm2d(c)))
            c_in = c
        self.head = nn.Conv2d(c_in, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for stage in self.stages:
            x = F.max_pool2d(stage(x), 2)
            pooled.append(x)
        x = pooled.pop()
        for block in self.decoder:
            x = block(x)
            if pooled:
                x = x + pooled.pop()
        return self.head(x)


class SegNet(nn.Module):
    """VGG16 encoder; a mirrored decoder that upsamples with the encoder's max-pooling indices."""

    def __init__(self, in_channels: int, classes: int, width: float):
        super().__init__()
        self.stages, widths = vgg16_stages(in_channels, width)
        self.decoder = nn.ModuleList()
        for i in reversed(range(5)):
            c_out = widths[i - 1] if i > 0 else widths[0]
            layers = make_layers([widths[i]] * (VGG16[i] - 1) + [c_out], batch_norm=True)
            layers[0] = nn.Conv2d(widths[i], layers[0].out_channels, 3, padding=1)
            self.decoder.append(layers)
        self.head = nn.Conv2d(widths[0], classes, 3, padding=1)
        self.straight_through = False  # BPDA backward pass of the unpooling (fmlib.models.bpda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices, sizes = [], []
        for stage in self.stages:
            x = stage(x)
            sizes.append(x.shape[-2:])
            x, idx = F.max_pool2d(x, 2, return_indices=True)
            indices.append(idx)
        for block in self.decoder:
            x = unpool(x, indices.pop(), sizes.pop(), straight_through=self.straight_through)
            x = block(x)
        return self.head(x)


@register_model("fcn", family="cnn", paper_parameters_m=18.64, depth=5,
                description="FCN: VGG16 encoder, transposed-convolution decoder with skips at every stage")
def fcn(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    return FCN(in_channels, classes, width)


@register_model("segnet", family="cnn", paper_parameters_m=29.44, depth=5,
                description="SegNet: VGG16 encoder, mirrored decoder upsampling with max-pooling indices")
def segnet(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    return SegNet(in_channels, classes, width)
