"""The DHP hypernetwork that produces one convolution's weights from latent vectors.

For a conv with ``C_out`` outputs, ``C_in`` inputs and a ``k x k`` kernel, the
hypernetwork (Li et al., ECCV 2020, Sec. 3.2) is, per weight element (i, j):

    latent matrix  m_ij = z_out[i] * z_in[j] + b0_ij              (outer product + bias)
    embedding      e_ij = m_ij * w1_ij + b1_ij                    (dimension ``embedding_dim``)
    kernel         W_ij = W2_ij @ e_ij + b2_ij                    (k*k values)

so the latents are the only thing shared across a layer and removing the entry
``z_c`` of a latent vector removes channel ``c`` of every conv that reads or
writes it.  Conv biases are ordinary parameters, not generated.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class HyperConv2d(nn.Module):
    """A conv whose weight is generated from ``(z_in, z_out)`` by the hypernetwork.

    ``out_per_latent`` lets several output channels follow one latent entry: the
    upsampler conv before ``PixelShuffle(2)`` writes 4 sub-pixel channels per
    feature channel, so its ``C_out = 4 * len(z_out)`` and output channel
    ``4c + k`` follows ``z_out[c]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 out_per_latent: int = 1, embedding_dim: int = 8, bias: bool = True,
                 gain: float = math.sqrt(2.0)):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels * out_per_latent
        self.kernel_size = kernel_size
        self.out_per_latent = out_per_latent
        self.embedding_dim = embedding_dim
        co, ci, kk, m = self.out_channels, in_channels, kernel_size * kernel_size, embedding_dim
        self.bias0 = nn.Parameter(torch.zeros(co, ci))
        self.weight1 = nn.Parameter(torch.empty(co, ci, m))
        self.bias1 = nn.Parameter(torch.zeros(co, ci, m))
        self.weight2 = nn.Parameter(torch.empty(co, ci, kk, m))
        self.bias2 = nn.Parameter(torch.zeros(co, ci, kk))
        self.bias = nn.Parameter(torch.zeros(co)) if bias else None
        self.reset_parameters(gain)

    def reset_parameters(self, gain: float = math.sqrt(2.0)) -> None:
        """Hyper-fan-in initialisation.

        With unit-variance latents, ``m_ij`` has unit variance, so does each
        embedding entry (``w1 ~ N(0, 1)``), and the generated kernel entry has
        variance ``embedding_dim * std(W2)^2``.  Choosing
        ``std(W2) = gain / sqrt(embedding_dim * fan_in)`` gives generated weights
        with the usual He variance ``gain^2 / fan_in``.
        """
        fan_in = self.in_channels * self.kernel_size * self.kernel_size
        nn.init.normal_(self.weight1, 0.0, 1.0)
        nn.init.normal_(self.weight2, 0.0, gain / math.sqrt(self.embedding_dim * fan_in))
        for p in (self.bias0, self.bias1, self.bias2):
            nn.init.zeros_(p)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def generate_weight(self, z_in: torch.Tensor, z_out: torch.Tensor) -> torch.Tensor:
        """The (C_out, C_in, k, k) kernel for the given latent vectors."""
        if self.out_per_latent > 1:
            z_out = z_out.repeat_interleave(self.out_per_latent)
        latent = torch.outer(z_out, z_in) + self.bias0                      # (co, ci)
        embedding = latent.unsqueeze(-1) * self.weight1 + self.bias1         # (co, ci, m)
        kernel = torch.matmul(self.weight2, embedding.unsqueeze(-1)).squeeze(-1) + self.bias2
        return kernel.view(self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)

    def forward(self, x: torch.Tensor, z_in: torch.Tensor, z_out: torch.Tensor) -> torch.Tensor:
        weight = self.generate_weight(z_in, z_out)
        return F.conv2d(x, weight, self.bias, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'out_per_latent={self.out_per_latent}, embedding_dim={self.embedding_dim}')
