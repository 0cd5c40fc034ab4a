"""The small CNNs of the course material, written with one module per layer.

Every ReLU, pooling and dropout is its own module (no ``F.relu`` in ``forward``) so that
hook-based methods (DeepLift, guided backprop, LRP) see every non-linearity.

>>> import torch
>>> from xai_widgets.zoo.nets import MnistCNN
>>> MnistCNN()(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn


class MnistCNN(nn.Module):
    """The course CNN: conv 1→10 k5, maxpool 2, relu, conv 10→20 k5, dropout, maxpool 2,
    relu, fc 320→50, relu, dropout, fc 50→10. Returns logits.

    ReLU runs before each max-pool: the same function (the two commute), but captum's
    DeepLift max-pool rule is only complete (maps sum to f(x) − f(baseline)) in this order.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 10, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.fc1 = nn.Linear(320, 50)
        self.relu3 = nn.ReLU()
        self.fc1_drop = nn.Dropout()
        self.fc2 = nn.Linear(50, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2_drop(self.conv2(x))))
        x = x.reshape(x.shape[0], 320)
        x = self.fc1_drop(self.relu3(self.fc1(x)))
        return self.fc2(x)


class TinyViT(nn.Module):
    """The smallest vision transformer, for examples: 4×4 patches of a 16×16 RGB image, one
    attention layer (``nn.MultiheadAttention``), a class token, three classes.

    >>> import torch
    >>> TinyViT()(torch.rand(2, 3, 16, 16)).shape
    torch.Size([2, 3])
    """

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)               # (N, 16, 8)
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)  # a class token
        out, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.head(out[:, 0])
