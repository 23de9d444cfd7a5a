"""Small models shared by the tests."""

import torch


def threshold_segmenter(gain: float, level: float = 0.5) -> torch.nn.Module:
    """A segmenter that needs no training: logits ``gain * (image - level)``, foreground where the image
    passes `level` (for a positive `gain`), with gradients everywhere; in eval mode."""
    model = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(gain)
        model.bias.fill_(-gain * level)
    return model.eval()
