"""ResNet-based models: DeepLabV3+ and PSPNet (from segmentation-models-pytorch) and ICNet.

The ResNet encoders come from timm (through smp's ``tu-`` encoders for DeepLabV3+ and PSPNet), so
their channel widths can be scaled (timm's ``channels`` and ``stem_width``). smp and timm are imported
by the constructors that use them: at import they cost seconds (they load ``torch._dynamo``), which
every notebook kernel, worker and command would pay for models most of them never build.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .registry import register_model, scaled


def resnet_widths(width: float) -> dict:
    return {"channels": tuple(scaled(c, width) for c in (64, 128, 256, 512)), "stem_width": scaled(64, width)}


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def aux_head(c_in: int, classes: int, width: float) -> nn.Sequential:
    """A small FCN head for deep supervision on an intermediate feature map."""
    return nn.Sequential(conv_bn_relu(c_in, scaled(64, width)), nn.Dropout2d(0.1),
                         nn.Conv2d(scaled(64, width), classes, 1))


@register_model("deeplabv3plus", family="cnn", paper_parameters_m=40.34, depth=5,
                description="DeepLabV3+ (smp): ResNet-50 encoder, output stride 16, full ASPP")
def deeplabv3plus(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    import segmentation_models_pytorch as smp  # noqa: PLC0415 (lazily: the module docstring)

    # The paper's ASPP uses full 3x3 convolutions, hence ~40 M parameters; smp's default is separable.
    return smp.DeepLabV3Plus(encoder_name="tu-resnet50", encoder_weights=None, in_channels=in_channels,
                             classes=classes, encoder_output_stride=16, decoder_aspp_separable=False,
                             decoder_channels=scaled(256, width), **resnet_widths(width))


class PSPNetAux(nn.Module):
    """smp's PSPNet over a dilated ResNet-18 (output stride 8), plus the auxiliary head on layer 3."""

    def __init__(self, in_channels: int, classes: int, width: float):
        super().__init__()
        import segmentation_models_pytorch as smp  # noqa: PLC0415 (lazily: the module docstring)

        self.psp = smp.PSPNet(encoder_name="tu-resnet18", encoder_weights=None, in_channels=in_channels,
                              classes=classes, encoder_depth=5, output_stride=8, upsampling=8,
                              psp_out_channels=scaled(512, width), **resnet_widths(width))
        self.aux = aux_head(self.psp.encoder.out_channels[-2], classes, width)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        features = self.psp.encoder(x)
        logits = self.psp.segmentation_head(self.psp.decoder(features))
        if not return_aux:
            return logits
        aux = F.interpolate(self.aux(features[-2]), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, [aux]


@register_model("pspnet", family="cnn", paper_parameters_m=12.83, aux_weights=(0.4,), depth=5,
                description="PSPNet (smp): dilated ResNet-18, output stride 8, pyramid 1/2/3/6, auxiliary loss 0.4")
def pspnet(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    return PSPNetAux(in_channels, classes, width)


class PyramidPooling(nn.Module):
    """Average the features over 1, 2, 3 and 6 bins and add them back (ICNet's light PPM)."""

    def __init__(self, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for b in self.bins:
            out = out + F.interpolate(F.adaptive_avg_pool2d(x, b), size=x.shape[-2:], mode="bilinear",
                                      align_corners=False)
        return out


class CascadeFeatureFusion(nn.Module):
    """ICNet's CFF: upsample the coarse branch, dilated conv, add the projected fine branch."""

    def __init__(self, c_low: int, c_high: int, c_out: int, classes: int):
        super().__init__()
        self.low = nn.Sequential(nn.Conv2d(c_low, c_out, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(c_out))
        self.high = nn.Sequential(nn.Conv2d(c_high, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.classifier = nn.Conv2d(c_low, classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor):
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.low(low) + self.high(high)), self.classifier(low)


class ICNet(nn.Module):
    """ICNet (Zhao et al. 2018) over a ResNet-18 cascade.

    Three inputs: the full image through three strided convolutions (1/8); the half image through
    the ResNet stem and layers 1-2 (1/16); those features, halved, through dilated layers 3-4 and a
    pyramid pooling (1/32). Two cascade feature fusions merge them; the two coarse outputs are
    deeply supervised (weights 0.16 at 1/32 and 0.4 at 1/16, as in the paper's code).
    """

    def __init__(self, in_channels: int, classes: int, width: float):
        super().__init__()
        import timm  # noqa: PLC0415 (lazily: the module docstring)

        self.backbone = timm.create_model("resnet18", pretrained=False, in_chans=in_channels, num_classes=0,
                                          output_stride=8, **resnet_widths(width))
        c2, c4 = self.backbone.layer2[-1].conv2.out_channels, self.backbone.layer4[-1].conv2.out_channels
        c = scaled(32, width)
        self.sub1 = nn.Sequential(conv_bn_relu(in_channels, c, stride=2), conv_bn_relu(c, c, stride=2),
                                  conv_bn_relu(c, 2 * c, stride=2))
        self.ppm = PyramidPooling()
        self.reduce = conv_bn_relu(c4, scaled(256, width), kernel=1)
        c_fuse = scaled(128, width)
        self.cff24 = CascadeFeatureFusion(scaled(256, width), c2, c_fuse, classes)
        self.cff12 = CascadeFeatureFusion(c_fuse, 2 * c, c_fuse, classes)
        self.head = nn.Conv2d(c_fuse, classes, 1)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        b = self.backbone
        half = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        f2 = b.layer2(b.layer1(b.maxpool(b.act1(b.bn1(b.conv1(half))))))              # 1/16
        f4 = b.layer4(b.layer3(F.avg_pool2d(f2, 2)))                                    # 1/32
        f4 = self.reduce(self.ppm(f4))
        f24, aux4 = self.cff24(f4, f2)                                                  # 1/16
        f124, aux24 = self.cff12(f24, self.sub1(x))                                     # 1/8
        logits = F.interpolate(self.head(f124), size=x.shape[-2:], mode="bilinear", align_corners=False)
        if not return_aux:
            return logits
        up = [F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False) for a in (aux24, aux4)]
        return logits, up


@register_model("icnet", family="cnn", paper_parameters_m=11.59, aux_weights=(0.4, 0.16), depth=5,
                description="ICNet: ResNet-18 image cascade, auxiliary losses 0.4 and 0.16")
def icnet(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    return ICNet(in_channels, classes, width)
