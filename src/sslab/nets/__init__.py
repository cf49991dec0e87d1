"""Networks: backbones (ResNet, ConvNet; timm when installed) and MLP heads."""

from __future__ import annotations

from torch import nn

from .convnet import ConvNet
from .heads import mlp
from .resnet import ResNet
from .vit import VIT_SIZES, VisionTransformer, vit

BACKBONES = ("convnet", "resnet18", "resnet34", "resnet50", *VIT_SIZES)


def reinitialize(module: nn.Module) -> nn.Module:
    """Fresh random weights drawn as at construction: every layer's ``reset_parameters``, then each
    network's own scheme (``init_weights``: He convolutions, ViT's truncated normals) on top."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for m in module.modules():
        if hasattr(m, "init_weights"):
            m.init_weights()
    return module


def create_backbone(name: str, in_channels: int = 3, stem: str = "imagenet", width: float = 1.0, **kw) -> nn.Module:
    """Build a backbone by name; the module has an ``out_dim`` attribute (feature size).

    ViTs take ``img_size`` (the position-embedding grid; other sizes are interpolated),
    ``patch_size`` and ``drop_path_rate``; ``stem`` and ``width`` apply to ResNets/ConvNets only.
    ``timm:<model>`` builds a timm model with its classifier removed (needs the ``timm`` extra).
    """
    if name == "convnet":
        return ConvNet(in_channels=in_channels, width=width, **kw)
    if name.startswith("resnet") and name[6:].isdigit() and int(name[6:]) in (18, 34, 50):
        return ResNet(depth=int(name[6:]), stem=stem, width=width, in_channels=in_channels, **kw)
    if name in VIT_SIZES:
        return vit(name, in_channels=in_channels, **kw)
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError as e:
            raise ValueError(f"backbone '{name}' needs timm: pip install 'sslab[timm]' ({e})") from None
        model = timm.create_model(name[5:], pretrained=False, num_classes=0, in_chans=in_channels, **kw)
        model.out_dim = model.num_features
        return model
    raise ValueError(f"unknown backbone '{name}'; valid choices: {', '.join(BACKBONES)}, timm:<name>")


__all__ = ["BACKBONES", "ConvNet", "ResNet", "VisionTransformer", "create_backbone", "mlp", "reinitialize", "vit"]
