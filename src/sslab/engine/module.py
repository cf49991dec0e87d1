"""The one LightningModule that trains any method: views on the device, the method's loss, a probe.

Per step: uint8 batch (with ``decode=device``, image files decoded on the device first) -> views
(generator seeded by ``(seed, global_step, rank)``, so a resumed run draws the same views) -> the
method's :class:`~sslab.methods.StepOutput` -> loss (+ the online linear probe's cross-entropy on
detached features) -> backward -> ``method.before_optimizer_step`` -> optimiser step ->
``method.after_step`` -> callbacks. This is :func:`sslab.step`'s protocol with Lightning's automatic
optimisation (mixed precision, gradient scaling, clipping) around it: its pieces
(:mod:`sslab.methods.step`) are called from one hook each, ``forward`` in ``training_step``,
``before_update`` in ``on_before_optimizer_step``, ``after_update`` in ``optimizer_step``.
The output's ``scalars`` are logged as ``method/<name>`` (epoch mean); ``training_step`` returns
``{"loss": ..., "step": <the StepOutput, detached>}``, which Lightning hands the callbacks'
``on_train_batch_end`` as ``outputs`` (the diagnostics monitor reads the embeddings there).

Nothing in a step reads a tensor on the host (on a GPU that would make the CPU wait for every
queued kernel, so it could never run ahead): the loss's finiteness is recorded on the device and
read every ``check_every`` steps and at the end of each epoch, before any callback sees the model (the
error still names the first bad step and its loss); the online probe masks unlabelled samples instead of gathering the labelled
ones; metrics are accumulated by Lightning on the device and read when they are logged.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from ..data.decode import as_images
from ..data.loaders import seeded_generator
from ..data.views import ViewPipeline
from ..methods import SSLMethod, StepOutput
from ..methods.step import after_update, before_update, forward
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
        *,
        seed: int = 0,
        online_probe: bool = True,
        channels_last: bool = False,
        check_every: int = 10,
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
        self.check_every = max(1, check_every)
        # the first non-finite loss: its step (-1: none yet) and value, kept on the device
        self.register_buffer("nonfinite_step", torch.full((), -1, dtype=torch.long), persistent=False)
        self.register_buffer("nonfinite_loss", torch.zeros(()), persistent=False)
        # the online probe's (correct, labelled) counts of this epoch, summed on the device
        self.register_buffer("probe_counts", torch.zeros(2, dtype=torch.long), persistent=False)
        method.configure_schedule(steps_per_epoch, self.total_steps)

    def make_views(self, images: torch.Tensor) -> list[torch.Tensor]:
        g = seeded_generator(images.device, self.seed, self.global_step, self.global_rank)
        views = self.views(images, g)
        if self.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def training_step(self, batch, batch_idx: int) -> dict:
        images, labels, _ = batch
        loss, out = self.step_loss(self.make_views(as_images(images, self.device)), labels)
        return {"loss": loss, "step": out.detach()}  # Lightning: outputs["step"] in on_train_batch_end

    def step_loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, StepOutput]:
        """The loss to minimise on ``views`` (the method's, plus the online probe's), with its metrics logged,
        and the method's output."""
        out = forward(self.method, views)
        loss = out.loss
        self.record_nonfinite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, sync_dist=True)
        for name, value in out.scalars.items():  # the method's own (DINO's teacher entropy and KL, the center's ‖s‖²)
            self.log(f"method/{name}", value.detach().float(), on_step=False, on_epoch=True, sync_dist=True)
        with torch.no_grad():  # collapse check: ~1/sqrt(D) when healthy, 0 when collapsed (SimSiam §4.1)
            z = F.normalize(out.embeddings[0].float(), dim=1)
            self.log("train/z_std", z.std(0).mean(), on_step=False, on_epoch=True, sync_dist=True)
        total = loss
        if self.probe is not None:
            # unlabelled samples (STL-10's, label -1) are masked out, not gathered out: the labelled count stays
            # on the device; a batch without labels adds a zero loss and is left out of the accuracy
            labelled = labels >= 0
            count = labelled.sum()
            weight = labelled.float() / count.clamp(min=1)
            logits = self.probe(out.features.detach())
            probe_loss = (F.cross_entropy(logits, labels.clamp(min=0), reduction="none") * weight).sum()
            self.probe_counts += torch.stack([((logits.argmax(1) == labels) & labelled).sum(), count])
            self.log("train/online_probe_loss", probe_loss, on_step=False, on_epoch=True, sync_dist=True)
            total = total + probe_loss
        return total, out

    def record_nonfinite(self, loss: torch.Tensor) -> None:
        """Remember the first non-finite loss on the device; :meth:`raise_if_nonfinite` reads it."""
        first = ~torch.isfinite(loss.detach()) & (self.nonfinite_step < 0)
        self.nonfinite_step.copy_(torch.where(first, self.global_step, self.nonfinite_step))
        self.nonfinite_loss.copy_(torch.where(first, loss.detach().float(), self.nonfinite_loss))

    def raise_if_nonfinite(self) -> None:
        """One host read: raise :class:`NonFiniteLossError` naming the first bad step if there was one."""
        step = int(self.nonfinite_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"loss is {float(self.nonfinite_loss)} at step {step}; lower optim.lr (now {self.optim_cfg.lr}) "
                "or check the data and the method options"
            )

    def on_train_epoch_start(self) -> None:
        self.probe_counts.zero_()

    def on_train_epoch_end(self) -> None:
        if self.probe is not None:  # the online probe's accuracy over the epoch (all ranks' counts summed)
            counts = self.trainer.strategy.reduce(self.probe_counts.float(), reduce_op="sum")
            self.log("train/online_probe_acc", counts[0] / counts[1].clamp(min=1))

    def on_before_optimizer_step(self, optimizer) -> None:
        before_update(self.method, self.global_step)  # global_step: steps done before this one
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
        # completed only after this hook returns: global_step is still the steps done before it
        after_update(self.method, self.global_step)
        done = self.global_step + 1
        # before any callback sees the model: never a checkpoint, kNN or diagnostics of non-finite weights
        if done % self.check_every == 0 or done % self.steps_per_epoch == 0:
            self.raise_if_nonfinite()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        step = self.global_step  # optimiser steps completed, including this one
        if step % self.trainer.log_every_n_steps == 0:  # a host float sent to the device only when it is written
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

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
