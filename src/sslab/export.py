"""``sslab export``: a run's pretrained backbone as a plain ``state_dict`` that torchvision or timm load.

* ``torchvision`` (ResNet-18/34/50): sslab's ResNet already uses torchvision's module names, so the
  export is the backbone's ``state_dict`` plus the 1000-class ``fc`` torchvision's model has, set
  to zeros so a strict load succeeds and any use of it is visibly untrained (a probe or
  fine-tune brings its own head), and
  ``torchvision.models.resnet50().load_state_dict(torch.load(FILE, weights_only=True))`` loads it
  strictly. timm's ResNets use the same names, so ``timm`` gives the same file for a ResNet.
* ``timm`` (ViT-Tiny/Small/Base): keys renamed to timm's ``VisionTransformer``
  (``patch_embed.proj``, ``blocks.N.attn.qkv`` / ``attn.proj``, ``blocks.N.mlp.fc1`` / ``fc2``),
  without a head, for ``timm.create_model(name, num_classes=0)``.

A sidecar ``FILE.json`` records the run, method, dataset, architecture and how to load the file.
A CIFAR-stem ResNet (3x3 ``conv1``, no max-pool) loads after ``model.conv1 = nn.Conv2d(3, 64, 3, 1,
1, bias=False)`` and ``model.maxpool = nn.Identity()``; the JSON says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from .io import atomic_save, atomic_write_text
from .nets import ResNet, VisionTransformer

FORMATS = ("torchvision", "timm")

#: sslab ViT name -> timm ViT name (key renames, in order)
TIMM_VIT_KEYS = (
    (r"^patch_embed\.(weight|bias)$", r"patch_embed.proj.\1"),
    (r"^blocks\.(\d+)\.(qkv|proj)\.", r"blocks.\1.attn.\2."),
    (r"^blocks\.(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.mlp\.2\.", r"blocks.\1.mlp.fc2."),
)


def export_state_dict(backbone: nn.Module, fmt: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict in ``fmt``'s names, metadata) of a backbone; ``fmt`` defaults to torchvision for
    ResNets and timm for ViTs. Other backbones have no torchvision/timm equivalent: a one-line error."""
    if isinstance(backbone, ResNet):
        fmt = fmt or "torchvision"
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format '{fmt}'; valid choices: {', '.join(FORMATS)}")
        state = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
        # torchvision's resnet has a 1000-class fc that a strict load_state_dict requires; SSL trains none, so zeros
        state["fc.weight"] = torch.zeros(1000, backbone.out_dim)
        state["fc.bias"] = torch.zeros(1000)
        cifar = isinstance(backbone.maxpool, nn.Identity)
        meta = {"architecture": f"resnet{backbone.depth}", "stem": "cifar" if cifar else "imagenet",
                "in_channels": backbone.conv1.in_channels, "format": fmt,
                "load": f"torchvision.models.resnet{backbone.depth}().load_state_dict(torch.load(FILE, weights_only=True))",
                "note": "fc is zeros: replace it by your own head"}
        if cifar:
            meta["before_loading"] = ("model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False); "
                                      "model.maxpool = nn.Identity()")
        return state, meta
    if isinstance(backbone, VisionTransformer):
        fmt = fmt or "timm"
        if fmt != "timm":
            raise ValueError(f"export format '{fmt}' does not fit a ViT (torchvision's ViT names every layer "
                             "differently); valid choices: timm")
        state = {}
        for key, value in backbone.state_dict().items():
            for pattern, repl in TIMM_VIT_KEYS:
                key = re.sub(pattern, repl, key)
            state[key] = value.detach().clone()
        size = {192: "tiny", 384: "small", 768: "base"}.get(backbone.out_dim, f"dim{backbone.out_dim}")
        name = f"vit_{size}_patch{backbone.patch_size}_224"
        meta = {"architecture": name, "format": "timm",
                "load": f"timm.create_model('{name}', num_classes=0).load_state_dict(torch.load(FILE, weights_only=True))"}
        return state, meta
    raise ValueError(f"backbone {type(backbone).__name__} has no torchvision/timm equivalent to export to; "
                     "valid choices: resnet18, resnet34, resnet50 (torchvision, timm), vit_tiny, vit_small, vit_base (timm)")


def export_run(run: str | Path, out: str | Path, fmt: str | None = None) -> Path:
    """Write the backbone of a run folder or checkpoint to ``out`` (and ``out.json``); returns ``out``."""
    from .evaluate import load_method

    method, cfg, step = load_method(run)
    state, meta = export_state_dict(method.backbone, fmt)
    out = Path(out)
    meta = {"run": str(run), "method": cfg.method, "dataset": cfg.dataset, "step": step, **meta}
    atomic_save(state, out)
    atomic_write_text(json.dumps(meta, indent=2) + "\n", out.with_name(out.name + ".json"))
    return out
