#!/usr/bin/python3
"""Golden files for the PyTorch interop test of tg::load (tests/test_serialize.cpp).

Run with Debian's interpreter (the one that has python3-torch), from anywhere:
    /usr/bin/python3 tests/golden/generate_resnet_block.py
It builds a ResNet basic block (conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the input, ReLU),
trains it a few steps so the weights and BatchNorm's running statistics are far from their
initial values, saves its state_dict with torch.save and exports that .pt file with
tools/export_safetensors.py (the path a user takes) to resnet_block.safetensors. It also writes
a fixed input [2, 4, 6, 6] and the block's eval-mode output, float32, to
resnet_block_io.safetensors (keys "input" and "output").
"""
import os
import sys
import tempfile

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import export_safetensors  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


def main():
    torch.manual_seed(0)
    block = BasicBlock(4)
    # A few SGD steps in training mode: the BN affine parameters move away from 1 and 0 and the
    # running statistics (and num_batches_tracked = 3) become non-trivial.
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    block.train()
    for _ in range(3):
        x = torch.randn(8, 4, 6, 6) * 2.0 + 0.5
        loss = (block(x) - 1.0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    block.eval()

    with tempfile.TemporaryDirectory() as tmp:
        pt = os.path.join(tmp, "resnet_block.pt")
        torch.save(block.state_dict(), pt)
        export_safetensors.export(pt, os.path.join(HERE, "resnet_block.safetensors"))

    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        y = block(x)
    export_safetensors.save_file({"input": x.numpy(), "output": y.numpy()},
                                 os.path.join(HERE, "resnet_block_io.safetensors"))
    print("state_dict:", {k: tuple(v.shape) for k, v in block.state_dict().items()})


if __name__ == "__main__":
    main()
