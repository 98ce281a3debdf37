"""Pretrained perceptual networks in plain torch: AlexNet / VGG16 features, LPIPS v0.1, DISTS.

Built by hand because the maintained packages (``lpips``, ``DISTS_pytorch``, pyiqa) build their
backbones through torchvision, which cannot be installed beside our torch; the layer names and
indices are torchvision's, so the weights from :mod:`flowmapsr.pretrained` load by name.

- :class:`LPIPSNet` (Zhang et al. 2018, v0.1): inputs in ``[-1, 1]``, scaled by LPIPS' shift /
  scale, five ReLU taps, unit-normalised over channels, squared difference, 1×1 linear head,
  spatial mean, summed. Reference: Zhang et al., "The Unreasonable Effectiveness of Deep Features
  as a Perceptual Metric", CVPR 2018, Eq. 1.
- :class:`DISTSNet` (Ding et al. 2020): inputs in ``[0, 1]``, ImageNet mean/std, VGG16 with its
  max-pools replaced by L2 pooling (a 3×3 Hann window — ``hanning(5)[1:-1]`` — stride 2),
  structure and texture similarities per channel weighted by α/β over the image and five
  stages. Reference: Ding et al., "Image Quality Assessment: Unifying Structure and Texture
  Similarity", TPAMI 2020, Eq. 6–9.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowmapsr.pretrained.store import load_weights

# torchvision's ``features`` layouts: ("conv", out_channels, kernel, stride, pad) | ("pool", k, s)
_ALEXNET = [
    ("conv", 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
    ("conv", 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
    ("conv", 384, 3, 1, 1), ("relu",),
    ("conv", 256, 3, 1, 1), ("relu",),
    ("conv", 256, 3, 1, 1), ("relu",),
]  # fmt: skip
_ALEXNET_TAPS = [1, 4, 7, 9, 11]  # relu1..relu5
_VGG16 = []
for _block, (_n, _c) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]):
    if _block:
        _VGG16.append(("pool", 2, 2))
    _VGG16 += [("conv", _c, 3, 1, 1), ("relu",)] * _n
VGG16_TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
VGG16_LAYERS = {}  # every VGG16 layer's name → index (conv1_1 … relu5_3), for feature losses
_b, _i = 1, 1
for _idx, _layer in enumerate(_VGG16):
    if _layer[0] == "pool":
        _b, _i = _b + 1, 1
    elif _layer[0] == "conv":
        VGG16_LAYERS[f"conv{_b}_{_i}"] = _idx
    else:
        VGG16_LAYERS[f"relu{_b}_{_i}"] = _idx
        _i += 1


class L2Pool(nn.Module):
    """DISTS' L2 pooling: ``sqrt(hann3×3 * x² + 1e-12)``, stride 2, per channel. Shape-halving."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).float().expand(channels, 1, 3, 3).clone())

    def forward(self, x):
        out = F.conv2d(x * x, self.filter.to(x.dtype), stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


def _features(spec, pool: str = "max") -> nn.Sequential:
    layers, cin = [], 3
    for item in spec:
        if item[0] == "conv":
            _, cout, k, s, p = item
            layers.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
            cin = cout
        elif item[0] == "relu":
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.MaxPool2d(item[1], item[2]) if pool == "max" else L2Pool(cin))
    return nn.Sequential(*layers)


class FeatureStack(nn.Module):
    """``(B, 3, H, W) → [taps]``: a frozen AlexNet / VGG16 ``features`` stack up to its last tap."""

    def __init__(self, net: str = "alexnet", pool: str = "max", taps: list[int] | None = None):
        super().__init__()
        spec, default = (_ALEXNET, _ALEXNET_TAPS) if net == "alexnet" else (_VGG16, None)
        self.taps = list(taps or default or VGG16_TAPS.values())
        self.features = _features(spec[: max(self.taps) + 1], pool)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, want = [], set(self.taps)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in want:
                out.append(x)
        return out


def _load(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str = "") -> None:
    own = module.state_dict()
    state = {k: tensors[prefix + k] for k in own if prefix + k in tensors}
    missing = [k for k in own if k not in state and not k.endswith("filter")]
    if missing:
        raise KeyError(f"weights lack {missing[:3]}…")
    module.load_state_dict(state, strict=False)


def vgg16_features(taps: list[int], pool: str = "max", weights_dir=None) -> FeatureStack:
    """Frozen pretrained VGG16 features returning the layers at ``taps`` (torchvision indices)."""
    stack = FeatureStack("vgg16", pool, taps)
    _load(stack, load_weights("vgg16", weights_dir))
    return stack.eval().requires_grad_(False)


class LPIPSNet(nn.Module):
    """LPIPS v0.1: ``(B, 3, H, W), (B, 3, H, W)`` in ``[-1, 1]`` → ``(B,)``. Lower = closer."""

    def __init__(self, net: str = "alex", weights_dir=None):
        super().__init__()
        name = {"alex": "alexnet", "alexnet": "alexnet", "vgg": "vgg16", "vgg16": "vgg16"}[net]
        self.net = FeatureStack(name)
        channels = [64, 192, 384, 256, 256] if name == "alexnet" else [64, 128, 256, 512, 512]
        self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        tensors = load_weights(name, weights_dir)
        _load(self.net, tensors, "")
        _load(self.lin, tensors, "lin.")
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        feats = self.net((torch.cat([x, y]) - self.shift) / self.scale)
        total = 0.0
        for f, lin in zip(feats, self.lin):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((f[:n] - f[n:]).pow(2)).mean((2, 3))
        return total.reshape(n)


class DISTSNet(nn.Module):
    """DISTS: ``(B, 3, H, W), (B, 3, H, W)`` in ``[0, 1]`` → ``(B,)``. Lower = closer."""

    chns = [3, 64, 128, 256, 512, 512]

    def __init__(self, weights_dir=None):
        super().__init__()
        self.net = FeatureStack("vgg16", pool="l2")
        _load(self.net, load_weights("vgg16", weights_dir))
        ab = load_weights("dists", weights_dir)
        self.register_buffer("alpha", ab["alpha"].reshape(1, -1, 1, 1).clone())
        self.register_buffer("beta", ab["beta"].reshape(1, -1, 1, 1).clone())
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, c1, c2 = x.shape[0], 1e-6, 1e-6
        both = torch.cat([x, y])
        feats = [both] + self.net((both - self.mean) / self.std)
        w_sum = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w_sum, self.chns, dim=1)
        beta = torch.split(self.beta / w_sum, self.chns, dim=1)
        structure = texture = 0.0
        for f, a, b in zip(feats, alpha, beta):
            fx, fy = f[:n], f[n:]
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            s1 = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
            vx = (fx - mx).pow(2).mean((2, 3), keepdim=True)
            vy = (fy - my).pow(2).mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            s2 = (2 * cov + c2) / (vx + vy + c2)
            structure = structure + (a * s1).sum(1)
            texture = texture + (b * s2).sum(1)
        return (1 - (structure + texture)).reshape(n)
