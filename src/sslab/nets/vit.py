"""Vision Transformer backbones (Dosovitskiy et al. 2021) as in DINO's ``vision_transformer.py``.

Patch embedding by a strided convolution, a [CLS] token, learned position embeddings
(interpolated bicubically for other input sizes, so multi-crop's small crops work), pre-norm
blocks (LayerNorm eps 1e-6, qkv bias, MLP ratio 4, GELU), stochastic depth, and the [CLS]
output after the final norm as the feature. Sizes: ``vit_tiny`` (192 wide, 3 heads),
``vit_small`` (384, 6 heads), ``vit_base`` (768, 12 heads), all 12 blocks deep; the patch
size is an option (DINO: 16 or 8; 4 for 28-32 px images).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: name -> (embed_dim, depth, num_heads)
VIT_SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12)}


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's residual branch with probability ``p`` (scaled by 1/(1-p))."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attention(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """ViT returning the normalised [CLS] token ``(N, embed_dim)``; ``out_dim`` = ``embed_dim``."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"image size {img_size} is not a multiple of patch_size {patch_size}")
        self.patch_size, self.out_dim = patch_size, embed_dim
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist()  # stochastic depth grows with depth
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.init_weights()

    def init_weights(self) -> None:
        """timm / DINO initialisation: truncated normal (std 0.02) embeddings and linear weights, zero biases,
        unit LayerNorms."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Position embeddings for an ``h x w`` patch grid (bicubic interpolation of the trained grid)."""
        if h * w == self.num_patches and h == w:
            return self.pos_embed
        side = int(math.sqrt(self.num_patches))
        grid = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x.flatten(2).transpose(1, 2)], 1)
        x = x + self.position_embedding(h, w)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def vit(name: str, in_channels: int = 3, img_size: int = 224, patch_size: int = 16, **kw) -> VisionTransformer:
    """``vit_tiny`` / ``vit_small`` / ``vit_base`` with ``patch_size`` and any other option."""
    dim, depth, heads = VIT_SIZES[name]
    return VisionTransformer(img_size, patch_size, in_channels, dim, depth, heads, **kw)
