"""Transformer models: SegFormer (hierarchical) and DPT over a plain ViT, both from smp and timm.

smp is imported by the constructors, not here: at import it costs seconds (it loads timm and
``torch._dynamo``), which every notebook kernel, worker and command would pay for models most of them
never build.
"""

from __future__ import annotations

from torch import nn

from .registry import register_model, scaled


@register_model("segformer", family="transformer", depth=4,
                description="SegFormer (smp): MiT-B0 hierarchical transformer encoder, all-MLP decoder")
def segformer(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    import segmentation_models_pytorch as smp  # noqa: PLC0415 (lazily: the module docstring)

    # MiT-B0 is already the smallest SegFormer encoder; `width` scales the decoder.
    return smp.Segformer(encoder_name="mit_b0", encoder_weights=None, in_channels=in_channels, classes=classes,
                         decoder_segmentation_channels=scaled(256, width))


@register_model("vit_dpt", family="transformer", depth=12,
                description="DPT (smp) over a plain ViT-Tiny with 8 x 8 patches and dynamic image size")
def vit_dpt(in_channels: int = 1, classes: int = 1, width: float = 1.0) -> nn.Module:
    import segmentation_models_pytorch as smp  # noqa: PLC0415 (lazily: the module docstring)

    # 8-pixel patches: a 128 px image is 16 x 16 tokens, fine enough for thin tubules.
    # Three heads of scaled(64) channels keep the embedding divisible by the head count.
    return smp.DPT(encoder_name="tu-vit_tiny_patch16_224", encoder_weights=None, in_channels=in_channels,
                   classes=classes, dynamic_img_size=True, patch_size=8, embed_dim=3 * scaled(64, width),
                   num_heads=3, decoder_intermediate_channels=tuple(scaled(c, width) for c in (96, 192, 384, 768)),
                   decoder_fusion_channels=scaled(256, width))
