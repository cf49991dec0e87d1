"""The one LightningModule that trains any method: views on the device, the method's loss, a probe.

Per step: uint8 batch -> views (generator seeded by ``(seed, global_step, rank)``, so a resumed
run draws the same views) -> ``method(views)`` -> loss (+ the online linear probe's
cross-entropy on detached features) -> optimiser step -> ``method.after_step`` -> callbacks.
Every other scalar (0-dim tensor) the method returns is logged as ``method/<name>`` (epoch mean).
"""

from __future__ import annotations

import math
import os

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from ..data.loaders import seeded_generator
from ..data.views import ViewPipeline
from ..methods import SSLMethod
from ..optim import build_optimizer, clip_per_parameter, cosine_schedule, warmup_cosine


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (one-line message with step and remedy)."""


class SSLModule(pl.LightningModule):
    def __init__(
        self,
        method: SSLMethod,
        views: ViewPipeline,
        optim,  # config.OptimConfig
        num_classes: int,
        steps_per_epoch: int,
        epochs: int,
        global_batch: int,
        seed: int = 0,
        online_probe: bool = True,
        channels_last: bool = False,
        kill_at_step: int | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.views = views
        self.optim_cfg = optim
        self.probe = nn.Linear(method.feature_dim, num_classes) if online_probe and num_classes > 0 else None
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.total_steps = steps_per_epoch * epochs
        self.global_batch = global_batch
        self.seed = seed
        self.channels_last = channels_last
        self.kill_at_step = kill_at_step
        method.configure_schedule(steps_per_epoch, self.total_steps)

    def make_views(self, images: torch.Tensor) -> list[torch.Tensor]:
        g = seeded_generator(images.device, self.seed, self.global_step, self.global_rank)
        views = self.views(images, g)
        if self.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, _ = batch
        out = self.method(self.make_views(images))
        self.last_embeddings = [z.detach() for z in out["embeddings"]]  # for the diagnostics monitor
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step}; lower optim.lr (now {self.optim_cfg.lr}) "
                "or check the data and the method options"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        for name, value in out.items():  # the method's own scalars (DINO's teacher entropy and KL, the center's ‖s‖²)
            if name != "loss" and isinstance(value, torch.Tensor) and value.ndim == 0:
                self.log(f"method/{name}", value.detach().float(), on_step=False, on_epoch=True, sync_dist=True)
        with torch.no_grad():  # collapse check: ~1/sqrt(D) when healthy, 0 when collapsed (SimSiam §4.1)
            z = F.normalize(out["embeddings"][0].float(), dim=1)
            self.log("train/z_std", z.std(0).mean(), on_step=False, on_epoch=True, sync_dist=True)
        total = loss
        if self.probe is not None:
            labelled = labels >= 0
            if labelled.any():
                logits = self.probe(out["features"].detach()[labelled])
                probe_loss = F.cross_entropy(logits, labels[labelled])
                acc = (logits.argmax(1) == labels[labelled]).float().mean()
                self.log("train/online_probe_loss", probe_loss, on_step=False, on_epoch=True, sync_dist=True)
                self.log("train/online_probe_acc", acc, on_step=False, on_epoch=True, sync_dist=True)
                total = total + probe_loss
        return total

    def on_before_optimizer_step(self, optimizer) -> None:
        self.method.before_optimizer_step(self.global_step)
        o = self.optim_cfg
        if o.clip_grad:
            clip_per_parameter(self.method.parameters(), o.clip_grad)
        if o.weight_decay_end is not None:  # DINO's cosine weight-decay schedule
            wd = cosine_schedule(o.weight_decay, o.weight_decay_end, self.global_step, self.total_steps)
            for g in optimizer.param_groups:
                if g.get("decays", g["weight_decay"] > 0):
                    g["decays"] = True  # remember which groups decay (those without stay at 0)
                    g["weight_decay"] = wd

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # right after the update, before any callback looks at the model (the diagnostics monitor must see
        # DirectPred's reset predictor and the EMA target of this step); Lightning counts this step as
        # completed only after this hook returns, hence + 1
        self.method.after_step(self.global_step + 1, self.total_steps)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        step = self.global_step  # optimiser steps completed, including this one
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        if self.kill_at_step is not None and step >= self.kill_at_step:
            os._exit(137)  # fault injection: die like SIGKILL, no cleanup, no checkpoint

    def configure_optimizers(self):
        o = self.optim_cfg
        lr = o.lr * self.global_batch / 256 if o.scale_lr else o.lr
        groups = self.method.parameter_groups()
        if self.probe is not None:
            groups.append({"params": list(self.probe.parameters()), "lr": o.probe_lr, "weight_decay": 0.0,
                           "lars_exclude": True})
        optimizer = build_optimizer(o.name, groups, lr=lr, weight_decay=o.weight_decay, momentum=o.momentum,
                                    eta=o.eta, betas=tuple(o.betas), exclude_bias_norm=o.exclude_bias_norm,
                                    bias_lr_ratio=o.bias_lr_ratio, lars_clip=o.lars_clip)
        warmup = int(math.ceil(o.warmup_epochs * self.steps_per_epoch))
        total, final = self.total_steps, o.final_lr_ratio

        def schedule(step: int) -> float:
            return warmup_cosine(step, total, warmup, final)

        def constant(step: int) -> float:
            return 1.0

        # a group marked fixed_lr (SimSiam's --fix-pred-lr predictor) keeps its initial learning rate
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, [constant if g.get("fixed_lr") else schedule for g in optimizer.param_groups])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
