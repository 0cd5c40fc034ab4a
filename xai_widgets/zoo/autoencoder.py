"""A small convolutional autoencoder: the encoder behind prototype counterfactuals.

Its latent space defines class prototypes (Van Looveren & Klaise), and its reconstruction
error measures how in-distribution an image is. ``train_autoencoder`` fits one on any
reference images in seconds; the demo ships one trained on the MNIST training digits.

>>> import torch
>>> from xai_widgets.zoo.autoencoder import ConvAutoencoder
>>> ae = ConvAutoencoder(channels=1)
>>> ae.encode(torch.zeros(2, 1, 28, 28)).shape, ae(torch.zeros(2, 1, 28, 28)).shape
(torch.Size([2, 392]), torch.Size([2, 1, 28, 28]))
"""

from __future__ import annotations

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    """conv 3×3 stride 2 twice down to 8×(H/4)×(W/4), transposed convs back, sigmoid out."""

    def __init__(self, channels: int = 1, width: int = 16, latent_channels: int = 8):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, latent_channels, 3, stride=2, padding=1))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(latent_channels, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))[..., : x.shape[-2], : x.shape[-1]]


def train_autoencoder(images: torch.Tensor, epochs: int = 20, seed: int = 0,
                      batch_size: int = 64) -> ConvAutoencoder:
    """Fit an autoencoder to images in 0..1 (N, C, H, W) with Adam; returns it in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ConvAutoencoder(channels=images.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=generator).split(batch_size):
            x = images[batch]
            loss = nn.functional.mse_loss(model(x), x)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()
