"""SAG models: SAGNet, the Self Attention Grid module, backbones and local pretrained weights."""
from sagkit.choices import BN_STATS, NECKS, check_input_size, parse_l2norm
from sagkit.models.backbones import BACKBONES, Lite0Backbone, ResNetBackbone, build_backbone
from sagkit.models.branch_norm import BranchStatistics
from sagkit.models.efficientnet_lite import EfficientNetLite0
from sagkit.models.pretrained import imagenet_weights_path, load_backbone_state, load_pretrained, read_state_dict
from sagkit.models.neck import BNNeckHead, EmbeddingHead, TrainOutput
from sagkit.models.sag import SelfAttentionGrid
from sagkit.models.sagnet import SAGNet

__all__ = [
    "BACKBONES", "BN_STATS", "BNNeckHead", "BranchStatistics", "EfficientNetLite0", "EmbeddingHead", "Lite0Backbone",
    "NECKS", "ResNetBackbone", "SAGNet", "TrainOutput",
    "SelfAttentionGrid", "build_backbone", "check_input_size", "imagenet_weights_path", "load_backbone_state", "load_pretrained",
    "parse_l2norm", "read_state_dict",
]
