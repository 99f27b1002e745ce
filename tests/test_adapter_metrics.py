"""IS / FID for the patched baselines through torchmetrics, with Inception weights from a local file.

The weights here are a randomly initialised network saved to a file (nothing is
downloaded): the numbers mean nothing as image quality, but the formulas are
checked against independent numpy/scipy references on the same features.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

pytest.importorskip("torch_fidelity")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore:Matrix is singular")

from _inception import random_inception_weights  # noqa: E402
from gan_optim.adapters import metrics as M  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_inception_weights(tmp_path_factory.mktemp("inception") / "pt_inception.pth")


@pytest.fixture(scope="module")
def m(weights):
    # 64-d pool features: the same formulas as the standard 2048-d ones, with fast linear algebra.
    return M.InceptionMetrics(weights, fid_features=64)


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def test_inception_score_is_the_formula_on_the_networks_logits(m):
    images = _images(6, 0)
    mean, std = m.inception_score(images, splits=1)
    with torch.no_grad():
        logits = m._logits(images).double().numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    py = p.mean(0, keepdims=True)
    expected = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), axis=1)))
    assert mean == pytest.approx(expected, rel=1e-4)
    assert np.isnan(std) or std == 0.0  # one split: no spread


def test_inception_score_leaves_the_global_generator_alone(m):
    state = torch.random.get_rng_state()
    m.inception_score(_images(4, 1), splits=2)  # its split shuffle draws random numbers
    assert torch.equal(torch.random.get_rng_state(), state)


def test_fid_is_the_frechet_distance_against_stored_statistics(m, weights, tmp_path):
    real, fake = _images(6, 2), _images(6, 3)
    with torch.no_grad():
        f_real = m._pool(real).double().numpy()
        f_fake = m._pool(fake).double().numpy()
    mu_r, sig_r = f_real.mean(0), np.cov(f_real, rowvar=False)
    np.savez(tmp_path / "stats.npz", mu=mu_r, sigma=sig_r)
    mu_f, sig_f = f_fake.mean(0), np.cov(f_fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(sig_r @ sig_f).real
    expected = float(np.sum((mu_r - mu_f) ** 2) + np.trace(sig_r + sig_f - 2 * covmean))
    got = m.fid(fake, tmp_path / "stats.npz")
    assert got == pytest.approx(expected, rel=1e-3)
    assert M.InceptionMetrics(weights, tmp_path / "stats.npz", fid_features=64).fid(fake) == pytest.approx(got, rel=1e-9)


def test_fid_reference_from_an_image_folder(m, tmp_path):
    from PIL import Image

    real = _images(3, 4)
    for i, img in enumerate(real):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / f"{i:02d}.png")
    np.testing.assert_allclose(m.reference_statistics(tmp_path)[0], m.pool_statistics(real)[0], rtol=1e-12)


def test_no_reference_means_no_fid_and_bad_paths_are_refused(m, weights, tmp_path):
    assert m.fid(_images(2, 5)) == M.NO_FID
    with pytest.raises(ValueError, match="inception weights"):
        M.InceptionMetrics(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="FID reference"):
        M.InceptionMetrics(weights, tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="'mu' and 'sigma'"):
        m.fid(_images(2, 5), tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="fid_features"):
        M.InceptionMetrics(weights, fid_features=100)
    with pytest.raises(ValueError, match="uint8"):
        m.inception_score(torch.zeros(4, 3, 8, 8))


def test_biggan_drop_in_scores_its_samples(m):
    g = torch.Generator().manual_seed(6)
    batches = [torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(3)]
    calls = iter(batches)
    get = M.biggan_prepare_inception_metrics(m)("C10", False, no_fid=True)
    is_mean, is_std, fid = get(lambda: (next(calls), None), 5, num_splits=1)
    images = ((torch.cat(batches)[:5] + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    assert is_mean == pytest.approx(m.inception_score(images, splits=1)[0], rel=1e-9)
    assert fid == M.NO_FID


def test_autogan_modules_score_a_png_folder_against_its_fid_stat(m, tmp_path):
    from PIL import Image

    mods = M.autogan_metric_modules(m)
    fake = _images(3, 7)
    for i, img in enumerate(fake):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / f"iter0_b{i}.png")
    mu, sigma = m.pool_statistics(_images(3, 8))
    np.savez(tmp_path / "fid_stat.npz", mu=mu, sigma=sigma)
    fid = mods["utils.fid_score"].calculate_fid_given_paths([str(tmp_path), str(tmp_path / "fid_stat.npz")])
    assert fid == pytest.approx(m.fid(fake, tmp_path / "fid_stat.npz"), rel=1e-9)
    hwc = list(fake.permute(0, 2, 3, 1).numpy())
    assert mods["utils.inception_score"].get_inception_score(hwc, splits=1)[0] == pytest.approx(
        m.inception_score(fake, splits=1)[0], rel=1e-9)
    with pytest.raises(RuntimeError, match="--inception-weights"):
        M.autogan_metric_modules(None)["utils.inception_score"].get_inception_score(hwc)


def test_load_images_reads_class_subfolders_in_path_order_and_spaces_a_limit(tmp_path):
    import numpy as np
    from PIL import Image

    from gan_optim.adapters.metrics import load_images

    values = {}
    for k in range(6):
        folder = tmp_path / ("a" if k < 3 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.full((2, 3, 3), 10 * k, dtype=np.uint8)).save(folder / f"{k}.png")
        values[k] = 10 * k
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    every = load_images(tmp_path)
    assert every.shape == (6, 3, 2, 3) and every[:, 0, 0, 0].tolist() == [0, 10, 20, 30, 40, 50]
    assert load_images(tmp_path, limit=3)[:, 0, 0, 0].tolist() == [0, 20, 40]  # every second file
    assert load_images(tmp_path, limit=10).shape[0] == 6
