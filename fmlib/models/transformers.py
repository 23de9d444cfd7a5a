"""Transformer models: SegFormer (hierarchical) and DPT over a plain ViT, both from smp and timm."""

from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import nn

from .registry import register_model, scaled


@register_model("segformer", family="transformer", depth=4,
                description="SegFormer (smp): MiT-B0 hierarchical transformer encoder, all-MLP decoder")
def segformer(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    # MiT-B0 is already the smallest SegFormer encoder; `width` scales the decoder.
    return smp.Segformer(encoder_name="mit_b0", encoder_weights=None, in_channels=in_channels, classes=classes,
                         decoder_segmentation_channels=scaled(256, width))


@register_model("vit_dpt", family="transformer", depth=12,
                description="DPT (smp) over a plain ViT-Tiny with 8 x 8 patches and dynamic image size")
def vit_dpt(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    # 8-pixel patches: a 128 px image is 16 x 16 tokens, fine enough for thin tubules.
    # Three heads of scaled(64) channels keep the embedding divisible by the head count.
    return smp.DPT(encoder_name="tu-vit_tiny_patch16_224", encoder_weights=None, in_channels=in_channels,
                   classes=classes, dynamic_img_size=True, patch_size=8, embed_dim=3 * scaled(64, width),
                   num_heads=3, decoder_intermediate_channels=tuple(scaled(c, width) for c in (96, 192, 384, 768)),
                   decoder_fusion_channels=scaled(256, width))
