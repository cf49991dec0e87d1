"""`sslab export`: the backbone's state_dict under torchvision's / timm's exact keys and shapes.

The reference lists are written here from torchvision's and timm's published architectures
(torchvision is not importable on the CPU machine); when torchvision or timm is importable the
file is also loaded into their models strictly.
"""

import json

import pytest
import torch

from sslab.build import method_from_config
from sslab.cli import main
from sslab.config import resolve, save
from sslab.export import export_state_dict
from sslab.io import atomic_save
from sslab.nets import create_backbone

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn(prefix, c):
    return {f"{prefix}.{k}": (() if k == "num_batches_tracked" else (c,)) for k in BN}


def torchvision_resnet_keys(depth, stem_kernel=7, in_channels=3):
    """torchvision.models.resnet{18,34,50}'s state_dict keys and shapes (models/resnet.py layout)."""
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[depth]
    bottleneck = depth == 50
    exp = 4 if bottleneck else 1
    out = {"conv1.weight": (64, in_channels, stem_kernel, stem_kernel), **bn("bn1", 64)}
    inplanes = 64
    for li, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            if bottleneck:
                out |= {f"{p}.conv1.weight": (planes, inplanes, 1, 1), **bn(f"{p}.bn1", planes),
                        f"{p}.conv2.weight": (planes, planes, 3, 3), **bn(f"{p}.bn2", planes),
                        f"{p}.conv3.weight": (planes * 4, planes, 1, 1), **bn(f"{p}.bn3", planes * 4)}
            else:
                out |= {f"{p}.conv1.weight": (planes, inplanes, 3, 3), **bn(f"{p}.bn1", planes),
                        f"{p}.conv2.weight": (planes, planes, 3, 3), **bn(f"{p}.bn2", planes)}
            if b == 0 and (li > 1 or inplanes != planes * exp):
                out |= {f"{p}.downsample.0.weight": (planes * exp, inplanes, 1, 1), **bn(f"{p}.downsample.1", planes * exp)}
            inplanes = planes * exp
    return out | {"fc.weight": (1000, 512 * exp), "fc.bias": (1000,)}


def timm_vit_keys(dim, depth=12, patch=16, img=224):
    """timm's vit_{tiny,small,base}_patch16_224 with num_classes=0 (vision_transformer.py layout)."""
    out = {"cls_token": (1, 1, dim), "pos_embed": (1, (img // patch) ** 2 + 1, dim),
           "patch_embed.proj.weight": (dim, 3, patch, patch), "patch_embed.proj.bias": (dim,),
           "norm.weight": (dim,), "norm.bias": (dim,)}
    for i in range(depth):
        b = f"blocks.{i}"
        out |= {f"{b}.norm1.weight": (dim,), f"{b}.norm1.bias": (dim,), f"{b}.attn.qkv.weight": (3 * dim, dim),
                f"{b}.attn.qkv.bias": (3 * dim,), f"{b}.attn.proj.weight": (dim, dim), f"{b}.attn.proj.bias": (dim,),
                f"{b}.norm2.weight": (dim,), f"{b}.norm2.bias": (dim,), f"{b}.mlp.fc1.weight": (4 * dim, dim),
                f"{b}.mlp.fc1.bias": (4 * dim,), f"{b}.mlp.fc2.weight": (dim, 4 * dim), f"{b}.mlp.fc2.bias": (dim,)}
    return out


def shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_resnet_export_has_torchvisions_keys_and_shapes(depth):
    state, meta = export_state_dict(create_backbone(f"resnet{depth}"))
    assert shapes(state) == torchvision_resnet_keys(depth)
    assert meta["stem"] == "imagenet" and "resnet" in meta["load"]
    cifar, meta = export_state_dict(create_backbone(f"resnet{depth}", stem="cifar"))
    assert shapes(cifar) == torchvision_resnet_keys(depth, stem_kernel=3) and "nn.Identity" in meta["before_loading"]


@pytest.mark.parametrize("name,dim", [("vit_tiny", 192), ("vit_small", 384)])
def test_vit_export_has_timms_keys_and_shapes(name, dim):
    backbone = create_backbone(name)
    state, meta = export_state_dict(backbone)
    assert shapes(state) == timm_vit_keys(dim)
    assert torch.equal(state["blocks.3.attn.qkv.weight"], backbone.blocks[3].qkv.weight)  # renamed, not reshuffled
    assert meta["architecture"] == f"{name}_patch16_224"
    with pytest.raises(ValueError, match="valid choices: timm"):
        export_state_dict(backbone, "torchvision")


def test_export_loads_strictly_into_torchvision_and_timm_when_importable():
    tv = pytest.importorskip("torchvision")
    state, _ = export_state_dict(create_backbone("resnet50"))
    tv.models.resnet50().load_state_dict(state)
    timm = pytest.importorskip("timm")
    state, _ = export_state_dict(create_backbone("vit_small"))
    timm.create_model("vit_small_patch16_224", num_classes=0).load_state_dict(state)


def test_cli_exports_a_run_and_refuses_a_backbone_without_equivalent(tmp_path, capsys):
    cfg = resolve(None, ["dataset=cifar10", "backbone=resnet18", "method=simclr"])
    torch.manual_seed(0)
    method = method_from_config(cfg)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save(cfg, run / "config.yaml")
    atomic_save({"state_dict": {f"method.{k}": v for k, v in method.state_dict().items()}, "global_step": 7},
                run / "checkpoints" / "last.ckpt")
    assert main(["export", str(run), "--out", str(tmp_path / "r18.pt")]) == 0
    state = torch.load(tmp_path / "r18.pt", weights_only=True)
    assert shapes(state) == torchvision_resnet_keys(18, stem_kernel=3)  # CIFAR-size images: the CIFAR stem
    assert torch.equal(state["layer2.0.conv1.weight"], method.backbone.layer2[0].conv1.weight)
    meta = json.loads((tmp_path / "r18.pt.json").read_text())
    assert meta["method"] == "simclr" and meta["step"] == 7 and meta["stem"] == "cifar"
    small = resolve(None, [])  # the default run: a ConvNet, which torchvision and timm do not have
    save(small, run / "config.yaml")
    atomic_save({"state_dict": {f"method.{k}": v for k, v in method_from_config(small).state_dict().items()}},
                run / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "c.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no torchvision/timm equivalent" in err[0] and "valid choices: resnet18" in err[0]
    assert not (tmp_path / "c.pt").exists()
