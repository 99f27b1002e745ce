"""IS / FID without TensorFlow on the real checkouts: the launcher's metric hooks reach the repos' own code."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from _inception import random_inception_weights
from upstream._shims import autogan_stubs, biggan_stubs, repo_on_path

BIGGAN = os.environ.get("GAN_OPTIM_BIGGAN_DIR")
AUTOGAN = os.environ.get("GAN_OPTIM_AUTOGAN_DIR")
pytestmark = [pytest.mark.upstream, pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("torch_fidelity")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_inception_weights(tmp_path_factory.mktemp("inception") / "pt_inception.pth")


@pytest.mark.skipif(not BIGGAN, reason="GAN_OPTIM_BIGGAN_DIR is not set")
def test_biggan_scores_through_its_own_prepare_inception_metrics_hook(weights, tmp_path):
    from gan_optim.adapters import metrics

    with repo_on_path(BIGGAN, biggan_stubs()):
        import inception_utils

        original = inception_utils.prepare_inception_metrics
        undo = metrics.install("biggan", weights)
        try:
            assert inception_utils.prepare_inception_metrics is not original
            # train.py's own call: dataset, parallel, no_fid; no moments file, no download.
            get = inception_utils.prepare_inception_metrics("C10", False, True)
            g = torch.Generator().manual_seed(0)
            is_mean, is_std, fid = get(lambda: (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, None), 4,
                                       num_splits=2)
            assert np.isfinite(is_mean) and is_mean >= 1.0 and fid == metrics.NO_FID
        finally:
            undo()
        assert inception_utils.prepare_inception_metrics is original


@pytest.mark.skipif(not AUTOGAN, reason="GAN_OPTIM_AUTOGAN_DIR is not set")
def test_autogan_imports_and_scores_without_tensorflow(weights):
    from gan_optim.adapters import metrics

    stubs = {k: v for k, v in autogan_stubs().items() if not k.startswith("utils.")}  # no TF stand-ins of ours
    with repo_on_path(AUTOGAN, stubs):
        undo = metrics.install("autogan", weights)
        try:
            import functions  # imports utils.fid_score / utils.inception_score: TF 1.x in the original

            images = list(torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8).numpy())
            mean, _ = functions.get_inception_score(images)
            assert np.isfinite(mean) and mean >= 1.0
        finally:
            undo()
