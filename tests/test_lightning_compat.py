"""sslab.engine.lightning_compat: the one private Lightning attribute sslab uses still exists and still works.

Run on every Lightning version CI installs: when a release renames or drops it, these fail, naming it.
"""

import signal

import lightning
import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

from sslab.engine.lightning_compat import LightningChanged, route_sigterm


class SignalledModule(pl.LightningModule):
    """A linear model that sends its process SIGTERM during its second step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        if batch_idx == 1:
            signal.raise_signal(signal.SIGTERM)
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(8, 2)), batch_size=2)


def _trainer() -> pl.Trainer:
    return pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)


def test_lightning_still_has_the_sigterm_notifier():
    assert callable(getattr(_SignalConnector, "_sigterm_notifier_fn", None)), lightning.__version__
    assert isinstance(getattr(_trainer(), "_signal_connector", None), _SignalConnector), lightning.__version__


def test_a_routed_sigterm_reaches_the_record_and_not_lightning():
    """With the notifier routed, a SIGTERM during the fit (under Lightning's handler) is recorded and the fit
    runs to its end; Lightning's own notifier would have ended it after the step."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # Lightning's handler alone (it keeps an existing one)
    try:
        recorded, trainer = [], _trainer()
        route_sigterm(trainer, lambda signum, frame: recorded.append(signum))
        trainer.fit(SignalledModule())
        assert recorded == [signal.SIGTERM] and not trainer.received_sigterm and trainer.global_step == 4
        unrouted = _trainer()  # the control: without the routing, Lightning ends the fit after the signalled step
        with pytest.raises(SystemExit):
            unrouted.fit(SignalledModule())
        assert unrouted.received_sigterm and unrouted.global_step == 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_lightning_without_it_is_a_loud_error():
    class Bare:
        pass

    with pytest.raises(LightningChanged, match="lightning_compat.py"):
        route_sigterm(Bare(), print)
