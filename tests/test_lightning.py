"""examples/lightning_gan.py with the real ``lightning`` package: training, and checkpoint save + resume
restoring our components' state (the resumed run continues bit for bit)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

L = pytest.importorskip("lightning", reason="the Lightning integration tests need `pip install lightning`")

spec = importlib.util.spec_from_file_location(
    "lightning_gan", Path(__file__).resolve().parents[1] / "examples" / "lightning_gan.py")
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)

BATCHES = 4


def _trainer(max_epochs: int) -> "L.Trainer":
    return L.Trainer(max_epochs=max_epochs, limit_train_batches=BATCHES, accelerator="cpu", devices=1,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)


def _loader():
    return torch.utils.data.DataLoader(example.ring_dataset(n=256), batch_size=32, shuffle=False)


def _model(d_step: str):
    torch.manual_seed(0)
    return example.GAN(d_step=d_step, g_schedule=0.5, d_schedule=0.25)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and loggers
        yield


@pytest.mark.parametrize("d_step", ["aw", "freeadv"])
def test_resume_restores_components_and_continues_bit_for_bit(tmp_path, d_step):
    straight = _model(d_step)
    _trainer(2).fit(straight, _loader())

    first = _model(d_step)
    trainer = _trainer(1)
    trainer.fit(first, _loader())
    ckpt = tmp_path / "gan.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=False)["gan_optim"]
    expected = {"wg", "sched", "tt"} | ({"aw"} if d_step == "aw" else {"fa"})
    assert set(saved) == expected
    assert saved["sched"]["iteration"] == BATCHES and saved["tt"]["steps_g"] > 0

    resumed = _model(d_step)
    _trainer(2).fit(resumed, _loader(), ckpt_path=ckpt)
    # Restored, then trained on: the counters continue from the checkpoint.
    assert resumed.sched.iteration == straight.sched.iteration == 2 * BATCHES
    assert resumed.sched.state_dict() == straight.sched.state_dict()
    assert (resumed.tt.steps_g, resumed.tt.steps_d) == (straight.tt.steps_g, straight.tt.steps_d)
    assert resumed.tt.lr_g == straight.tt.lr_g and resumed.tt.lr_d == straight.tt.lr_d
    if d_step == "freeadv":
        assert torch.equal(resumed.fa.delta, straight.fa.delta)
    else:
        assert resumed.aw.steps == straight.aw.steps
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_trains_with_lightning_counting_the_steps():
    model = _model("aw")
    trainer = _trainer(2)
    trainer.fit(model, _loader())
    counts = model.sched.counts
    assert counts["D"] + counts["G"] == 2 * BATCHES and counts["D"] > 0
    # Steps taken through TwoTimescale go through Lightning's optimizer wrappers.
    assert trainer.global_step == model.tt.steps_g + model.tt.steps_d
    assert model.aw.steps == counts["D"]


def test_checkpoint_state_for_a_missing_component_is_an_error(tmp_path):
    model = _model("aw")
    trainer = _trainer(1)
    trainer.fit(model, _loader())
    trainer.save_checkpoint(tmp_path / "aw.ckpt")
    other = example.GAN(d_step="plain")
    with pytest.raises(RuntimeError, match="aw"):
        _trainer(2).fit(other, _loader(), ckpt_path=tmp_path / "aw.ckpt")
