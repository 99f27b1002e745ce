"""The launcher's --cpu and --image-folder: CUDA-only code on the CPU, a local image folder as the dataset."""

import types

import numpy as np
import pytest
import torch
from PIL import Image

from gan_optim.adapters import _runtime, launch


def _write_images(root, per_class=(2, 3), size=(5, 4)):
    """Class folders b/ and a/ (sorted: a=0, b=1) of RGB images whose pixels are known."""
    rng = np.random.default_rng(0)
    arrays = {}
    for name, n in zip(("b", "a"), per_class):
        (root / name).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(a).save(root / name / f"{i}.png")
            arrays[(name, i)] = a
    (root / "a" / "notes.txt").write_text("not an image")
    return arrays


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the redirect where CUDA is absent")
def test_on_cpu_sends_cuda_devices_and_types_to_the_cpu_and_undoes():
    saved_float, saved_long = torch.cuda.FloatTensor, torch.cuda.LongTensor
    handle = _runtime.on_cpu()
    try:
        x = torch.randn(3, device="cuda")
        y = torch.arange(4, device=torch.device("cuda", 0)).to("cuda:0", torch.float64)
        z = torch.ones(2).cuda()
        lin = torch.nn.Linear(2, 2).cuda().to("cuda")
        f = torch.cuda.FloatTensor(np.array([[1.5, 2.0]]))
        i = torch.zeros(2).type(torch.cuda.FloatTensor)
        for t in (x, y, z, lin.weight, f, i):
            assert t.device.type == "cpu"
        assert y.dtype == torch.float64 and y.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert f.dtype == torch.float32 and f.tolist() == [[1.5, 2.0]]
    finally:
        handle.undo()
    handle.undo()  # idempotent
    assert torch.cuda.FloatTensor is saved_float and torch.cuda.LongTensor is saved_long
    with pytest.raises((RuntimeError, AssertionError)):
        torch.randn(1, device="cuda")


def test_image_folder_data_labels_sizes_and_values(tmp_path):
    arrays = _write_images(tmp_path)
    data = _runtime.ImageFolderData(tmp_path)
    assert data.classes == ["a", "b"] and len(data) == 5 and data.targets == [0, 0, 0, 1, 1]
    image, label = data[3]  # b/0.png
    expected = torch.from_numpy(arrays[("b", 0)].astype(np.float64)).permute(2, 0, 1) / 127.5 - 1
    assert label == 1 and image.shape == (3, 4, 5)
    torch.testing.assert_close(image.double(), expected, atol=1e-6, rtol=0)
    resized, _ = _runtime.ImageFolderData(tmp_path, size=8, transform=lambda im: im.size)[0]
    assert resized == (8, 8)


def test_image_folder_data_errors_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="--image-folder.*not a folder"):
        _runtime.ImageFolderData(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--image-folder: no images"):
        _runtime.ImageFolderData(tmp_path / "empty")
    _write_images(tmp_path / "two")
    with pytest.raises(ValueError, match="2 class subfolders.*1 classes"):
        _runtime.ImageFolderData(tmp_path / "two", n_classes=1)


def _biggan_like_utils():
    """A module with BigGAN-PyTorch's contract: get_data_loaders builds dset_dict[dataset](root=..., transform=...)."""
    utils = types.ModuleType("utils_standin")
    utils.imsize_dict = {"C10": 6}
    utils.nclass_dict = {"C10": 10}
    utils.root_dict = {"C10": "cifar"}

    class NotThere:
        def __init__(self, **_):
            raise RuntimeError("Dataset not found or corrupted.")

    utils.dset_dict = {"C10": NotThere}

    def get_data_loaders(dataset, data_root=None, batch_size=2, **kwargs):
        train_set = utils.dset_dict[dataset](root=f"{data_root}/{utils.root_dict[dataset]}",
                                             transform=lambda im: np.asarray(im).shape, load_in_mem=False,
                                             index_filename="C10_imgs.npz")
        return [train_set]

    utils.get_data_loaders = get_data_loaders
    return utils


def test_biggan_image_folder_serves_the_folder_at_the_datasets_size_and_undoes(tmp_path):
    _write_images(tmp_path)
    utils = _biggan_like_utils()
    original, table = utils.get_data_loaders, utils.dset_dict
    handle = _runtime.biggan_image_folder(tmp_path, utils)
    (train_set,) = utils.get_data_loaders(dataset="C10", data_root="data")
    assert isinstance(train_set, _runtime.ImageFolderData) and len(train_set) == 5
    assert train_set[0] == ((6, 6, 3), 0)  # resized to C10's size, then BigGAN's transform
    assert utils.dset_dict is table  # only during the call
    handle.undo()
    assert utils.get_data_loaders is original
    with pytest.raises(RuntimeError, match="Dataset not found"):
        utils.get_data_loaders("C10", "data")


def test_autogan_image_folder_replaces_torchvisions_downloading_datasets_and_undoes(tmp_path):
    import torchvision.datasets

    _write_images(tmp_path)
    saved = torchvision.datasets.CIFAR10, torchvision.datasets.STL10
    handle = _runtime.autogan_image_folder(tmp_path)
    try:
        train = torchvision.datasets.CIFAR10(root="./data", train=True, transform=lambda im: im.size, download=True)
        stl = torchvision.datasets.STL10(root="./data", split="train+unlabeled", transform=None, download=True)
        assert len(train) == 5 and train[4] == ((5, 4), 1) and len(stl) == 5
    finally:
        handle.undo()
    assert (torchvision.datasets.CIFAR10, torchvision.datasets.STL10) == saved


def test_launcher_refuses_a_missing_image_folder_in_one_line(tmp_path, capsys):
    import sys
    from pathlib import Path

    from upstream._shims import repo_on_path

    standin = Path(__file__).parent / "upstream" / "standins" / "biggan"
    with repo_on_path(standin):
        code = launch.main("biggan", ["--repo", str(standin), "--technique", "none", "--image-folder",
                                      str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 2 and "Invalid --image-folder" in err and "Traceback" not in err
    assert str(standin) not in sys.path  # the launcher undid what it set up
