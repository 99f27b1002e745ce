"""AW's one-backward split on BigGAN-PyTorch's own discriminator (``GAN_OPTIM_BIGGAN_DIR``).

BigGAN's D has its own spectral-norm layers (SNConv2d, SNLinear, SNEmbedding),
self-attention with a learned gain, and scores ``cat([fake, real])`` in one
pass: the split must equal two autograd.grad calls per part, in float64.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from _reference import aw_hinge_gradients
from upstream._shims import biggan_stubs, real_checkout, repo_on_path

REPO, pytestmark = real_checkout("biggan")


@pytest.mark.parametrize("attention", ["0", "16"])
def test_split_on_biggans_own_discriminator_equals_two_backward_passes(attention):
    from gan_optim import AWDiscriminatorLoss

    with repo_on_path(REPO, biggan_stubs()):
        import BigGAN

        torch.manual_seed(0)
        D = BigGAN.Discriminator(D_ch=2, resolution=32, D_attn=attention, n_classes=10).double()
        with torch.no_grad():  # BigGAN starts the attention gain at 0; a live gain must get its gradient
            for name, p in D.named_parameters():
                if name.endswith("gamma"):
                    p.fill_(0.5)
        aw = AWDiscriminatorLoss(D, loss="hinge")
        gen = torch.Generator().manual_seed(1)
        for step in range(2):
            x = torch.rand(4, 3, 32, 32, generator=gen, dtype=torch.float64) * 2 - 1
            fake = torch.randn(4, 3, 32, 32, generator=gen, dtype=torch.float64)
            y = torch.randint(0, 10, (8,), generator=gen)
            D_ref = copy.deepcopy(D)
            out = D_ref(torch.cat([fake, x]), y)
            d_fake, d_real = torch.split(out, [4, 4])
            expected = aw_hinge_gradients(d_real, d_fake, [p for p in D_ref.parameters() if p.requires_grad])

            for p in D.parameters():
                p.grad = None
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the split applies: no fallback warning
                d_fake, d_real = torch.split(D(torch.cat([fake, x]), y), [4, 4])
                aw.from_outputs(d_real, d_fake).backward()
            for (name, p), want in zip(D.named_parameters(), expected):
                torch.testing.assert_close(p.grad, want, atol=1e-10, rtol=0, msg=name)
            for b, b_ref in zip(D.buffers(), D_ref.buffers()):
                torch.testing.assert_close(b, b_ref, atol=0, rtol=0)
        assert aw._split.checked  # the one-backward path ran (checked once, then used alone)


def test_a_renamed_autograd_attribute_falls_back_on_biggans_own_discriminator(monkeypatch):
    """A torch release that renames a saved attribute the split reads: two backward passes, one warning."""
    import dataclasses

    from gan_optim import AWDiscriminatorLoss, _grad_split

    kind = _grad_split._NODES["ConvolutionBackward0"]
    monkeypatch.setitem(_grad_split._NODES, "ConvolutionBackward0",
                        dataclasses.replace(kind, saved={**kind.saved, "input": "_saved_input_renamed"}))
    with repo_on_path(REPO, biggan_stubs()):
        import BigGAN

        torch.manual_seed(0)
        D = BigGAN.Discriminator(D_ch=2, resolution=32, D_attn="16", n_classes=10).double()
        aw = AWDiscriminatorLoss(D, loss="hinge")
        gen = torch.Generator().manual_seed(1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                x = torch.rand(4, 3, 32, 32, generator=gen, dtype=torch.float64) * 2 - 1
                fake = torch.randn(4, 3, 32, 32, generator=gen, dtype=torch.float64)
                y = torch.randint(0, 10, (8,), generator=gen)
                D_ref = copy.deepcopy(D)
                d_fake, d_real = torch.split(D_ref(torch.cat([fake, x]), y), [4, 4])
                expected = aw_hinge_gradients(d_real, d_fake, [p for p in D_ref.parameters() if p.requires_grad])
                for p in D.parameters():
                    p.grad = None
                d_fake, d_real = torch.split(D(torch.cat([fake, x]), y), [4, 4])
                aw.from_outputs(d_real, d_fake).backward()
                for (name, p), want in zip(D.named_parameters(), expected):
                    torch.testing.assert_close(p.grad, want, atol=1e-10, rtol=0, msg=name)
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1 and "_saved_input_renamed" in messages[0], messages
        assert not aw._split.checked
