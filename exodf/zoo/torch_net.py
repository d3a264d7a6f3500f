"""The ExoDeepFinder network in PyTorch, with the weights transferred from the Keras network.

ilastik runs only PyTorch weights (TorchScript or a state dict) and deepImageJ's ONNX engine needs an ONNX
graph; both are made from :class:`ExoDeepFinderTorch`. The module takes and returns channels-last tensors
``(batch, t, y, x, channel)``, the layout of the Keras network and of the bioimage.io description, so every
weight format of the package shares one input and one output description.

Keras' ``padding="same"`` of the 2-wide up-convolutions pads 0 voxels before and 1 after on every axis;
the module does exactly that with an explicit pad before an unpadded convolution.

This module imports torch: import it only where PyTorch is wanted (exodf's own paths never do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["ExoDeepFinderTorch", "torch_from_keras", "keras_conv_weights", "N_CONV"]

# Convolutions of the network in call order: (in, out, kernel). Must match exodf.model.build_unet.
_CONVS: tuple[tuple[int, int, int], ...] = (
    (1, 32, 3), (32, 32, 3),                      # level 1 -> "high"
    (32, 48, 3), (48, 48, 3),                     # level 2 -> "mid"
    (48, 64, 3), (64, 64, 3), (64, 64, 3), (64, 64, 3),  # bottom
    (64, 64, 2),                                  # up-conv to level 2
    (112, 48, 3), (48, 48, 3),                    # level 2 decoder (64 + 48 channels in)
    (48, 48, 2),                                  # up-conv to level 1
    (80, 32, 3), (32, 32, 3),                     # level 1 decoder (48 + 32 channels in)
    (32, 3, 1),                                   # class scores
)
N_CONV = len(_CONVS)


class ExoDeepFinderTorch(nn.Module):
    """ExoDeepFinder's 3D U-Net: (B, T, Y, X, 1) float32 -> (B, T, Y, X, 3) class probabilities.

    Y and X must be multiples of 4; T is free (time is never pooled).
    """

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv3d(i, o, k, padding=(k // 2 if k % 2 else 0)) for i, o, k in _CONVS])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = list(self.convs)

        def up(v: torch.Tensor, layer: nn.Module) -> torch.Tensor:
            v = F.interpolate(v, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
            return F.relu(layer(F.pad(v, (0, 1, 0, 1, 0, 1))))

        x = x.permute(0, 4, 1, 2, 3)
        high = F.relu(conv[1](F.relu(conv[0](x))))
        x = F.max_pool3d(high, (1, 2, 2))
        mid = F.relu(conv[3](F.relu(conv[2](x))))
        x = F.max_pool3d(mid, (1, 2, 2))
        for k in range(4, 8):
            x = F.relu(conv[k](x))
        x = torch.cat([up(x, conv[8]), mid], dim=1)
        x = F.relu(conv[10](F.relu(conv[9](x))))
        x = torch.cat([up(x, conv[11]), high], dim=1)
        x = F.relu(conv[13](F.relu(conv[12](x))))
        x = torch.softmax(conv[14](x), dim=1)
        return x.permute(0, 2, 3, 4, 1)


def keras_conv_weights(net: "keras.Model") -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of each Conv3D layer of a Keras ExoDeepFinder network, in call order."""
    convs = [layer for layer in net.layers if layer.__class__.__name__ == "Conv3D"]
    weights = [tuple(np.asarray(w) for w in layer.get_weights()) for layer in convs]
    shapes = [(w[0].shape[3], w[0].shape[4], w[0].shape[0]) for w in weights]
    if shapes != list(_CONVS):
        raise ValueError(f"torch_from_keras: the Keras network's convolutions {shapes} are not ExoDeepFinder's")
    return weights  # type: ignore[return-value]


def torch_from_keras(net: "keras.Model") -> "torch.nn.Module":
    """A :class:`ExoDeepFinderTorch` in eval mode holding the weights of the Keras network ``net``.

    Keras kernels are (kt, ky, kx, in, out); PyTorch's are (out, in, kt, ky, kx).
    """
    module = ExoDeepFinderTorch()
    with torch.no_grad():
        for conv, (kernel, bias) in zip(module.convs, keras_conv_weights(net)):
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2))))
            conv.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
    return module.eval()
