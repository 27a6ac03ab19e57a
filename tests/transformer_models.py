"""Small transformers for the tests: a ViT that spikingjelly's STA and
TD-equivalent recipes convert, and a random tiny Hugging Face Qwen2 (no download)."""

from __future__ import annotations

import torch
import torch.nn as nn

IMAGE = (1, 16, 16)


class Block(nn.Module):
    """Pre-norm attention + MLP, written the way the STA recipe accepts
    (``nn.MultiheadAttention(batch_first=True)``, ``need_weights=False``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.n2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x):
        y = self.n1(x)
        a, _ = self.attn(y, y, y, need_weights=False)
        x = x + a
        return x + self.fc2(self.act(self.fc1(self.n2(x))))


class TinyViT(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 4, blocks: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.patch = nn.Conv2d(IMAGE[0], dim, 4, 4)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(blocks)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.patch(x).flatten(-2).transpose(-1, -2)  # negative dims: T-agnostic
        return self.head(self.norm(self.blocks(x)).mean(-2))


def images(count: int, seed: int = 0):
    return torch.rand(count, *IMAGE, generator=torch.Generator().manual_seed(seed))


def first_real_then_zero(x, steps: int):
    """[T, B, ...]: the image at t = 0, zeros after (what TD operators expect)."""
    seq = torch.zeros((steps, *x.shape), dtype=x.dtype)
    seq[0] = x
    return seq


def tiny_qwen2(layers: int = 2, seed: int = 0):
    """A random Qwen2ForCausalLM from a config: nothing is downloaded."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2)
    return Qwen2ForCausalLM(config).eval(), config


def token_batches(config, batches: int, batch_size: int, length: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    found = []
    for _ in range(batches):
        ids = torch.randint(0, config.vocab_size, (batch_size, length), generator=gen)
        found.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    return found
