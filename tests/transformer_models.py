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


class TDOperators(nn.Module):
    """Every ann2snn operator a converted transformer holds that consumes its
    input like an ANN op (TDLinear, TDConv2d with ``padding="same"`` or grouped,
    strided and dilated, TDMultiheadAttention) or combines two inputs
    (TDScaledDotProductAttention, SNNElementWiseProduct with broadcasting,
    SNNMatrixOperator), fed by two multi-step IF neurons; single-step ones on one
    timestep; some fed the raw input (encoding MACs) or real values computed from
    spikes (MACs)."""

    def __init__(self, embed: int = 6) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron
        from spikingjelly.activation_based.ann2snn import operators as ops

        torch.manual_seed(0)
        self.a = neuron.IFNode(step_mode="m", v_threshold=0.5)
        self.b = neuron.IFNode(step_mode="m", v_threshold=0.7)
        self.lin = ops.TDLinear(embed, 5)
        self.mha = ops.TDMultiheadAttention(embed, 2)
        self.sdpa = ops.TDScaledDotProductAttention()
        self.ew = ops.SNNElementWiseProduct()
        self.mm = ops.SNNMatrixOperator()
        self.mm_raw = ops.SNNMatrixOperator()  # a real first operand: only b is charged
        self.same = ops.TDConv2d(2, 4, (3, 5), padding="same", dilation=(1, 2), groups=2)
        self.conv = ops.TDConv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                                 groups=2)
        self.conv_s = ops.TDConv2d(2, 3, 3, padding=1, step_mode="s")
        self.enc_lin = ops.TDLinear(embed, 3)
        self.enc_conv = ops.TDConv2d(2, 3, 3, stride=2, padding=1)
        self.enc_conv_s = ops.TDConv2d(2, 3, 2, step_mode="s")
        self.mha_raw = ops.TDMultiheadAttention(embed, 2)  # raw query, spikes twice
        self.mha_raw_kv = ops.TDMultiheadAttention(embed, 2)  # spikes, raw key = value
        self.real_lin = ops.TDLinear(embed, 2)  # fed tanh(spikes)

    def forward(self, x):  # x: [T, B, L, embed], L * embed = 2 * 4 * (embed // 2)
        a, b = self.a(x), self.b(x * 0.8)
        image = (x.shape[0], x.shape[1], 2, 4, -1)
        outs = [self.lin(a), self.mha(a, b, b)[0],
                self.sdpa(a.unsqueeze(2), b.unsqueeze(2), b.unsqueeze(2)),
                self.ew(a[..., :1], b[..., :1, :]),  # both broadcast
                self.mm(a.unsqueeze(2), b.unsqueeze(2).transpose(-1, -2)),
                self.mm_raw(x, b.transpose(-1, -2)),
                self.same(a.reshape(image)), self.conv(a.reshape(image)),
                self.enc_lin(x), self.enc_conv(x.reshape(image)),
                self.conv_s(a[0].reshape(image[1:])), self.enc_conv_s(x[0].reshape(image[1:])),
                self.mha_raw(x, a, a)[0], self.mha_raw_kv(a, x, x)[0],
                self.real_lin(torch.tanh(a))]
        return sum(o.sum() for o in outs)
