"""SAGNet: a backbone with Self Attention Grid modules after chosen residual stages, plus the re-id head."""
from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from sagkit.choices import (ATTENTIONS, BN_STATS, EMBEDDINGS, GRID_SCALES, INPUT_SCALES, L2NORM_DIMS, LAST_STRIDES,
                            NECKS, SAG_OUTPUTS, UPSAMPLE_MODES, check_choice, check_depths, check_input_size,
                            parse_l2norm)

from sagkit.models.backbones import build_backbone, set_last_stride
from sagkit.models.branch_norm import BRANCH_STATS_PREFIX, BranchStatistics, shared_statistic_key
from sagkit.models.neck import TrainOutput, build_neck
from sagkit.models.sag import SelfAttentionGrid

log = logging.getLogger("sagkit.models")


class SAGNet(nn.Module):
    """Two-branch backbone with Self Attention Grids after residual stages `depths`, and a re-id head.

    Input x: N×3×H×W, H and W multiples of 32, normalised with `input_mean`/`input_std`.
    Lower branch: I2 = x. Upper branch: I1 = upsample(x) to (⌊H·s⌋, ⌊W·s⌋), s = `scale_factor` (Eq. 1,
    bilinear, or nearest as in the authors' code), through the same backbone (`share_weights=True`) or
    its own copy. At each depth Di in `depths`, with f2 = stage-i output of the lower branch and f1 that
    of the upper branch:
        G = softmax_{h·w}(ReLU(BN(conv1×1(f2))))          (Eqs. 4-5, N×1×h×w, sums to 1 per image)
        v = maxpool_{s×s, stride s}(f1) ⊙ G               (Eq. 6, G broadcast over channels)
        v ← v / max(‖v‖₂, 1e-12)   at depths in l2norm     (Eq. 7; default D1-D3 only, Section 4.6)
    What flows on (the paper does not say; decided here): v replaces the lower branch's map and goes
    through the later stages; the upper branch continues unattended and is computed only up to the
    deepest SAG depth. The final lower-branch map is average-pooled into the head (`neck`, see
    ``sagkit.models.neck``): "paper" = Linear(C, 512) → BatchNorm1d → LeakyReLU(0.1) → Dropout(0.5) →
    Linear(512, num_classes); "bnneck" = BoT's BatchNorm1d(C) without bias → Linear(C, num_classes).
    train() → forward gives a `TrainOutput` (logits N×num_classes, pooled features N×C before the neck,
    embedding after it); eval() → the N×`embedding_dim` retrieval embedding: "bottleneck" = the neck's
    BatchNorm1d output (before LeakyReLU/dropout), "pool" = the pooled C-d map.
    `depths=()` is the plain baseline: one branch on the original image, no upsampling.
    `last_stride=1` (ResNets, as BoT) makes stage 4 keep stage 3's resolution: output stride 16 instead
    of 32, so at 160×64 the final map and the D4 grid are 10×4 (40 cells, the size of the D3 grid)
    instead of 5×2 (10 cells); D1-D3 are unchanged. The input sides must still be multiples of 32.
    Lite0 takes it too (block 11's depthwise convolution; ImageNet weights unchanged).

    Controls (issue 22; ``docs/controls.md``): `input_scale=k` upsamples the input k× (the `upsample`
    mode) before both branches, so a baseline with `input_scale=2` sees exactly the tensor D4's upper
    branch sees; `attention="uniform"` replaces the learned grid by 1/(h·w) (no parameters) and keeps the
    upper branch and its max filter; `last_stride=1` gives a finer final map without more input pixels.

    Choices the paper leaves open: ‖v‖₂ in Eq. 7 is taken over the whole map of each image
    (`l2norm_dim="map"`); per-position normalisation over channels (`"channel"`, what F.normalize's
    default dim=1 would do) divides out G exactly, so the grid would have no effect at D1-D3.
    `grid_scale="none"` keeps the paper's softmax weights (~1/(h·w)); "area" multiplies G by h·w
    (mean weight 1). `attention="sigmoid"` gates each cell with sigmoid(BN(conv(f2))) instead.
    `share_weights=False` gives the upper branch its own copy of the stem and stages 1..max(depths).
    `bn_stats`: with shared weights, "per_branch" (default) keeps separate BatchNorm running statistics
    for the upper branch (`branch_stats`), so in eval mode each branch is normalised with statistics of
    its own input; "shared" keeps one set averaged over both inputs, as the authors' code does. Weights
    and train-mode outputs are the same either way; only eval mode differs.
    `sag_output`: what the lower branch carries on after a SAG module. The paper does not say; "replace"
    (default) passes the attended map on in place of the lower map; "residual" passes lower + attended,
    so that the module can add to the map but never remove what the backbone saw.
    """

    def __init__(self, num_classes: int, depths: Iterable[int] = (4,), backbone: str = "resnet50",
                 pretrained: str | None = None, l2norm: object = None, share_weights: bool = True,
                 attention: str = "softmax", scale_factor: int = 2, upsample: str = "bilinear",
                 embedding: str = "bottleneck", l2norm_dim: str = "map", grid_scale: str = "none",
                 bottleneck_dim: int | None = None, dropout: float | None = None, bn_stats: str = "per_branch",
                 neck: str = "paper", last_stride: int = 2, sag_output: str = "replace", input_scale: int = 1):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
        self.depths = check_depths(depths)
        self.l2norm_depths = parse_l2norm(l2norm, self.depths)
        for name, value, choices in (("attention", attention, ATTENTIONS), ("upsample", upsample, UPSAMPLE_MODES),
                                     ("embedding", embedding, EMBEDDINGS), ("l2norm_dim", l2norm_dim, L2NORM_DIMS),
                                     ("grid_scale", grid_scale, GRID_SCALES), ("bn_stats", bn_stats, BN_STATS),
                                     ("neck", neck, NECKS), ("last_stride", last_stride, LAST_STRIDES),
                                     ("sag_output", sag_output, SAG_OUTPUTS)):
            check_choice(name, value, choices)
        if isinstance(input_scale, bool) or input_scale not in INPUT_SCALES:
            raise ValueError(f"input_scale must be one of {INPUT_SCALES} (1: the image as given); got {input_scale!r}")
        if (isinstance(scale_factor, bool) or not isinstance(scale_factor, (int, float))
                or not float(scale_factor).is_integer() or scale_factor < 2):
            raise ValueError(f"scale_factor must be an integer >= 2 (it is also the max-pool size); "
                             f"got {scale_factor!r}")
        self.num_classes = num_classes
        self.backbone_name = backbone
        self.share_weights = bool(share_weights)
        self.attention = attention
        self.scale_factor = int(scale_factor)
        self.upsample = upsample
        self.embedding = embedding
        self.bn_stats = bn_stats
        self.neck = neck
        self.sag_output = sag_output
        self.input_scale = input_scale
        self.backbone = build_backbone(backbone, pretrained=pretrained)
        if last_stride != 2:
            set_last_stride(self.backbone, last_stride)
        self.input_mean = tuple(self.backbone.input_mean)
        self.input_std = tuple(self.backbone.input_std)
        self.feature_dim = self.backbone.stage_channels[-1]
        deepest = self.depths[-1] if self.depths else 0
        # Upper-branch copy: only the stem and stages up to the deepest SAG depth are ever used.
        self.upper = None
        if deepest and not self.share_weights:
            self.upper = copy.deepcopy(nn.ModuleList(self.backbone.stages()[:deepest + 1]))
        # Upper-branch BatchNorm statistics over a shared backbone, copied from the (pretrained) shared ones.
        self.branch_stats = None
        if deepest and self.share_weights and bn_stats == "per_branch":
            self.branch_stats = BranchStatistics(self.backbone, self.backbone.stages()[:deepest + 1])
            self.register_load_state_dict_pre_hook(SAGNet._fill_branch_stats)
        self.sags = nn.ModuleDict({
            f"D{d}": SelfAttentionGrid(self.backbone.stage_channels[d - 1], attention=attention,
                                       l2norm=d in self.l2norm_depths, l2norm_dim=l2norm_dim,
                                       scale_factor=self.scale_factor, grid_scale=grid_scale)
            for d in self.depths})
        self.head = build_neck(neck, self.feature_dim, num_classes, bottleneck_dim=bottleneck_dim, dropout=dropout)
        self.embedding_dim = self.head.dim if embedding == "bottleneck" else self.feature_dim
        self.frozen_stages = -1

    # ----------------------------------------------------------------- forward
    def _upper_stages(self) -> list[nn.Module]:
        return self.backbone.stages() if self.upper is None else list(self.upper)

    def _run(self, x: torch.Tensor, grids: dict[int, torch.Tensor] | None = None,
             stop_after: int = 4) -> torch.Tensor:
        """Both branches through stages 0..stop_after; returns the lower branch's map after SAG."""
        check_input_size(x.shape[-2], x.shape[-1])
        if self.input_scale != 1:
            x = self._upsampled(x, self.input_scale)
        deepest = self.depths[-1] if self.depths else 0
        lower_stages, upper_stages = self.backbone.stages(), self._upper_stages()
        lower, upper = lower_stages[0](x), None
        if deepest:
            with self._upper_statistics():
                upper = upper_stages[0](self._upsampled(x, self.scale_factor))
        for i in range(1, stop_after + 1):
            lower = lower_stages[i](lower)
            if i <= deepest:
                with self._upper_statistics():
                    upper = upper_stages[i](upper)
            if i in self.depths:
                attended, grid = self.sags[f"D{i}"](lower, upper)
                lower = attended if self.sag_output == "replace" else lower + attended
                if grids is not None:
                    grids[i] = grid
        return lower

    def _upper_statistics(self) -> contextlib.AbstractContextManager:
        """Context in which shared BatchNorm layers use the upper branch's own running statistics."""
        return self.branch_stats.upper() if self.branch_stats is not None else contextlib.nullcontext()

    def _fill_branch_stats(self, state_dict: dict, prefix: str, *args) -> None:
        """Load hook: a checkpoint from before per-branch statistics starts them from its shared ones."""
        filled = 0
        for key in self.branch_stats.state_dict():
            target = prefix + BRANCH_STATS_PREFIX + key
            source = shared_statistic_key(target, prefix)
            if target not in state_dict and source in state_dict:
                state_dict[target] = state_dict[source]
                filled += 1
        if filled:
            log.warning("checkpoint has no per-branch BatchNorm statistics (saved before they existed): the "
                        "upper branch starts from the shared ones for %d BatchNorm layers", len(self.branch_stats))

    def _upsampled(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        """x N×3×H×W → N×3×(H·factor)×(W·factor) in the `upsample` mode (Eq. 1)."""
        size = (int(x.shape[-2] * factor), int(x.shape[-1] * factor))
        if self.upsample == "nearest":
            return F.interpolate(x, size=size, mode="nearest")
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×H×W → final lower-branch map N×C×H/32×W/32 (H/16×W/16 with last_stride=1), after the D4 grid
        when 4 is in depths."""
        return self._run(x)

    def forward_head(self, features: torch.Tensor) -> TrainOutput | torch.Tensor:
        """N×C×h×w → a `TrainOutput` in train mode, the N×embedding_dim retrieval embedding in eval mode."""
        pooled = features.mean(dim=(2, 3))
        if self.training:
            return self.head(pooled)
        return pooled if self.embedding == "pool" else self.head.embed(pooled)

    def forward_logits(self, features: torch.Tensor) -> torch.Tensor:
        """N×C×h×w → identity logits N×num_classes in either mode (eval: dropout off); Grad-CAM scores these."""
        return self.head(features.mean(dim=(2, 3))).logits

    def forward(self, x: torch.Tensor) -> TrainOutput | torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def attention_grids(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """{depth: grid N×1×h×w} for every SAG depth; no gradients, BN running statistics left untouched."""
        if not self.depths:
            check_input_size(x.shape[-2], x.shape[-1])
            return {}
        saved = [(b, b.clone()) for b in self.buffers()] if self.training else []
        grids: dict[int, torch.Tensor] = {}
        try:
            self._run(x, grids, stop_after=self.depths[-1])
        finally:
            for buf, value in saved:
                buf.copy_(value)
        return grids

    # ------------------------------------------------------- training helpers
    def _backbone_modules(self) -> list[nn.Module]:
        return [self.backbone] + ([self.upper] if self.upper is not None else [])

    def param_groups(self, lr_pretrained: float, lr_new: float, lr_sag: float | None = None) -> list[dict]:
        """Optimizer groups "backbone" (lr_pretrained), "sag" and "head" (lr_new; `lr_sag` overrides the SAG one).

        Frozen parameters (requires_grad False) are left out; a group may be empty (e.g. "sag" for the baseline).
        """
        def trainable(modules: list[nn.Module]) -> list[nn.Parameter]:
            return [p for m in modules for p in m.parameters() if p.requires_grad]

        return [{"params": trainable(self._backbone_modules()), "lr": lr_pretrained, "name": "backbone"},
                {"params": trainable([self.sags]), "lr": lr_new if lr_sag is None else lr_sag, "name": "sag"},
                {"params": trainable([self.head]), "lr": lr_new, "name": "head"}]

    def _stage_views(self, index: int) -> list[nn.Module]:
        views = [self.backbone.stages()[index]]
        if self.upper is not None and index < len(self.upper):
            views.append(self.upper[index])
        return views

    def freeze_stages(self, n: int) -> None:
        """Freeze the stem and stages 1..n (n=0: stem only; n=-1: nothing) in both branches.

        Frozen parts get requires_grad False and keep their BatchNorm in eval mode even under train(),
        except the lower branch's stages after the first SAG module: their input is the attended (and
        possibly L2-normalised) map, whose scale ImageNet statistics do not describe, so their BatchNorm
        layers keep learning (running statistics and affine parameters). Without this a D1-D3 module in
        front of frozen stages collapses the features. Calling again with a smaller n unfreezes the rest.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not -1 <= n <= 4:
            raise ValueError(f"freeze_stages(n) needs an int n in -1..4 (-1 none, 0 stem, k stem+stages 1..k); got {n!r}")
        self.frozen_stages = n
        for index in range(5):
            for view in self._stage_views(index):
                view.requires_grad_(index > n)
        for index in self._adapting_stages():
            for module in self.backbone.stages()[index].modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.requires_grad_(True)
        self.train(self.training)

    def _adapting_stages(self) -> range:
        """Frozen lower-branch stages that come after the first SAG module (their BN keeps learning)."""
        if not self.depths:
            return range(0)
        return range(self.depths[0] + 1, self.frozen_stages + 1)

    def train(self, mode: bool = True) -> "SAGNet":
        super().train(mode)
        if mode:
            adapting = set(self._adapting_stages())
            for index in range(self.frozen_stages + 1):
                for view in self._stage_views(index):
                    if not (index in adapting and view is self.backbone.stages()[index]):
                        view.eval()
        return self
