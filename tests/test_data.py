"""Data modules, epoch batching and the IDX reader/downloader."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dish.core.epochs import EpochBatches
from dish.core.errors import ConfigError
from dish.data.idx import SPLIT_FILES, read_idx
from dish.data.images import DigitsDataModule, FashionMnistDataModule, MnistDataModule

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# --- digits -------------------------------------------------------------------------------------------------

def digits(**kwargs) -> DigitsDataModule:
    dm = DigitsDataModule(**kwargs)
    dm.setup("fit")
    return dm


def test_digits_shapes_labels_and_unit_range():
    dm = digits()
    assert dm.x_train.shape == (1437, 64)
    assert dm.x_val.shape == (360, 64)
    assert dm.y_train.shape == (1437,)
    assert dm.y_val.shape == (360,)
    assert dm.x_train.dtype == torch.float32
    assert dm.y_train.dtype == torch.int64
    for y in (dm.y_train, dm.y_val):
        assert set(y.unique().tolist()) == set(range(10))
    for x in (dm.x_train, dm.x_val):
        assert float(x.min()) == 0.0
        assert float(x.max()) == 1.0
    assert (dm.input_dim, dm.num_classes) == (64, 10)


def test_digits_other_normalisations():
    raw = digits(normalize="none")
    assert float(raw.x_train.max()) == 16.0
    standard = digits(normalize="standard")
    torch.testing.assert_close(standard.x_train.mean(0), torch.zeros(64), atol=1e-4, rtol=0)
    varying = raw.x_train.std(0) > 0
    std = standard.x_train.std(0, unbiased=False)[varying]
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-3, rtol=0)


def test_digits_split_depends_on_seed_only():
    a, b, c = digits(seed=3), digits(seed=3), digits(seed=4)
    for name in ("x_train", "y_train", "x_val", "y_val"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.x_val, c.x_val)
    assert not torch.equal(a.y_train, c.y_train)


def test_digits_val_fraction():
    dm = digits(val_fraction=0.5)
    assert len(dm.x_train) + len(dm.x_val) == 1797
    assert abs(len(dm.x_val) - 1797 / 2) <= 1


def test_digits_subset_is_stratified():
    dm = digits(subset=200)
    assert dm.x_train.shape == (200, 64)
    counts = torch.bincount(dm.y_train, minlength=10)
    assert (counts > 0).all()
    assert int(counts.min()) >= 18  # stratified: ~20 per class
    assert dm.x_val.shape == (360, 64)  # the validation split is untouched


def test_digits_subset_larger_than_data():
    with pytest.raises(ConfigError) as info:
        digits(subset=5000)
    assert info.value.field == "subset"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"subset": -3}, "subset"),
    ({"normalize": "zz"}, "normalize"),
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"val_fraction": 0}, "val_fraction"),
])
def test_digits_bad_values(kwargs, field):
    with pytest.raises(ConfigError) as info:
        DigitsDataModule(**kwargs)
    assert info.value.field == field
    assert repr(next(iter(kwargs.values()))) in info.value.problem


def test_bad_normalisation_lists_accepted_values():
    with pytest.raises(ConfigError) as info:
        DigitsDataModule(normalize="zz")
    assert info.value.accepted == ["unit", "standard", "none"]
    assert info.value.message.endswith("(accepted: unit, standard, none)")


def test_loaders_serve_the_splits():
    dm = digits()
    (epoch,) = list(dm.train_dataloader())
    minibatches = list(epoch.minibatches())
    assert len(minibatches) == 15  # ceil(1437 / 100)
    assert sum(len(x) for x, _ in minibatches) == 1437
    assert torch.equal(epoch.x_val, dm.x_val)  # every epoch item carries the whole validation split
    assert torch.equal(epoch.y_val, dm.y_val)


# --- epoch batches ------------------------------------------------------------------------------------------

def epoch_order(batches: EpochBatches) -> list[int]:
    (epoch,) = list(batches)
    return torch.cat([x for x, _ in epoch.minibatches()]).tolist()


def test_epoch_batches_cover_every_sample_once():
    x = torch.arange(53)
    y = x * 10
    batches = EpochBatches(x, y, batch_size=10, seed=0, validation=(x[:5], y[:5]))
    assert len(batches) == 1
    items = list(batches)
    assert len(items) == 1  # one item per epoch: that epoch's samples, cut into minibatches on demand
    (epoch,) = items
    minibatches = list(epoch.minibatches())
    assert [len(xb) for xb, _ in minibatches] == [10, 10, 10, 10, 10, 3]
    for xb, yb in minibatches:
        assert torch.equal(yb, xb * 10)  # pairs stay together
    order = torch.cat([xb for xb, _ in minibatches])
    assert sorted(order.tolist()) == list(range(53))
    assert order.tolist() != list(range(53))  # shuffled


def test_epoch_order_is_fixed_by_seed_and_epoch():
    x = torch.arange(50)
    a = EpochBatches(x, x, batch_size=7, seed=1, validation=(x, x))
    epoch0 = epoch_order(a)
    assert epoch_order(a) == epoch0  # iterating again without a new epoch repeats the order
    a.sampler.set_epoch(1)
    epoch1 = epoch_order(a)
    assert epoch1 != epoch0
    assert sorted(epoch1) == list(range(50))

    b = EpochBatches(x, x, batch_size=7, seed=1, validation=(x, x))
    b.sampler.set_epoch(1)
    assert epoch_order(b) == epoch1
    b.sampler.set_epoch(0)
    assert epoch_order(b) == epoch0

    other_seed = EpochBatches(x, x, batch_size=7, seed=2, validation=(x, x))
    assert epoch_order(other_seed) != epoch0


# --- IDX files ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "plain"])
def test_mnist_reads_idx_files(tmp_path, mnist_files, gzipped):
    arrays = mnist_files(tmp_path / "mnist", gzipped=gzipped)
    suffix = ".gz" if gzipped else ""
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(n + suffix for n in arrays)
    dm = MnistDataModule(data_dir=str(tmp_path))
    dm.setup()
    assert dm.x_train.shape == (6, 784)
    assert dm.x_val.shape == (4, 784)
    expected = arrays["train-images-idx3-ubyte"].reshape(6, 784).astype(np.float32) / 255
    np.testing.assert_allclose(dm.x_train.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(dm.x_val.numpy(),
                               arrays["t10k-images-idx3-ubyte"].reshape(4, 784).astype(np.float32) / 255,
                               rtol=1e-6)
    assert dm.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert dm.y_val.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_reads_mixed_and_torchvision_layout(tmp_path, idx_file):
    """Files may sit in torchvision's MNIST/raw folder, some gzipped and some not."""
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    idx_file(folder / "train-images-idx3-ubyte", images, gzipped=True)
    idx_file(folder / "train-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8), gzipped=False)
    idx_file(folder / "t10k-images-idx3-ubyte", images[:2], gzipped=False)
    idx_file(folder / "t10k-labels-idx1-ubyte", np.array([7, 9], dtype=np.uint8), gzipped=True)
    dm = MnistDataModule(data_dir=str(tmp_path), normalize="none")
    dm.setup()
    assert dm.x_train.shape == (3, 784)
    assert torch.equal(dm.x_train, torch.from_numpy(images.reshape(3, 784).astype(np.float32)))
    assert dm.y_train.tolist() == [1, 2, 3]
    assert dm.y_val.tolist() == [7, 9]


def test_read_idx_round_trip(tmp_path, idx_file):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = idx_file(tmp_path / "a-idx3-ubyte", array, gzipped=False)
    assert np.array_equal(read_idx(path), array)
    gz = idx_file(tmp_path / "b-idx3-ubyte", array, gzipped=True)
    assert gz.name.endswith(".gz")
    assert np.array_equal(read_idx(gz), array)


def test_read_idx_rejects_bad_magic(tmp_path):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(bytes([1, 0, 0x08, 1, 0, 0, 0, 2, 5, 6]))
    with pytest.raises(ConfigError) as info:
        read_idx(path)
    assert info.value.field == "data_dir"
    assert "magic" in info.value.problem
    assert str(path) in info.value.problem
    path.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 2, 5, 6]))  # unknown dtype code
    with pytest.raises(ConfigError):
        read_idx(path)


def test_read_idx_rejects_truncated_files(tmp_path, idx_file):
    path = tmp_path / "short-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2, 3]))  # header says 5 values, 3 follow
    with pytest.raises(ConfigError) as info:
        read_idx(path)
    assert info.value.field == "data_dir"
    assert "truncated" in info.value.problem

    gz = idx_file(tmp_path / "whole-idx1-ubyte", np.arange(100, dtype=np.uint8), gzipped=True)
    cut = tmp_path / "cut-idx1-ubyte.gz"
    cut.write_bytes(gz.read_bytes()[:-12])  # a gzip stream cut short
    with pytest.raises(ConfigError) as info:
        read_idx(cut)
    assert str(cut) in info.value.problem


def test_read_idx_rejects_file_cut_inside_header(tmp_path):
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(ConfigError):
        read_idx(path)


def test_missing_files_suggest_download(tmp_path):
    dm = MnistDataModule(data_dir=str(tmp_path))
    with pytest.raises(ConfigError) as info:
        dm.setup()
    assert info.value.field == "data_dir"
    assert "download=true" in info.value.problem
    assert str(tmp_path / "mnist") in info.value.problem


@pytest.mark.parametrize(("kwargs", "field"),
                         [({"val_subset": 0}, "val_subset"), ({"subset": "x"}, "subset")])
def test_idx_bad_values(tmp_path, kwargs, field):
    with pytest.raises(ConfigError) as info:
        MnistDataModule(data_dir=str(tmp_path), **kwargs)
    assert info.value.field == field


# --- download -----------------------------------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving the folder it yields (with the server's base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_download_fetches_missing_files(tmp_path, http_root, mnist_files, no_proxy):
    root, url = http_root
    arrays = mnist_files(root / "good", gzipped=True, seed=5)
    # a first mirror that serves files that are not IDX (they must be refused, not stored) ...
    (root / "junk").mkdir()
    for name in SPLIT_FILES.values():
        (root / "junk" / f"{name}.gz").write_bytes(gzip.compress(b"<html>not found</html>"))
    # ... one without the files at all (404) and then the good one
    mirrors = [f"{url}junk/", f"{url}missing/", f"{url}good"]
    data_dir = tmp_path / "data"
    dm = MnistDataModule(data_dir=str(data_dir), download=True, mirrors=mirrors)
    dm.prepare_data()
    dm.setup()
    stored = data_dir / "mnist"
    assert sorted(p.name for p in stored.iterdir()) == sorted(f"{n}.gz" for n in SPLIT_FILES.values())
    for name in SPLIT_FILES.values():
        assert (stored / f"{name}.gz").read_bytes() == (root / "good" / f"{name}.gz").read_bytes()
    assert not list(data_dir.rglob(".*.tmp"))
    assert dm.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    np.testing.assert_allclose(dm.x_val.numpy(),
                               arrays["t10k-images-idx3-ubyte"].reshape(4, 784).astype(np.float32) / 255,
                               rtol=1e-6)
    # a second prepare_data finds the files and fetches nothing (the server is gone for this module)
    again = MnistDataModule(data_dir=str(data_dir), download=True, mirrors=["http://127.0.0.1:9/"])
    again.prepare_data()
    again.setup()
    assert torch.equal(again.x_train, dm.x_train)


def test_download_failure_names_every_mirror(tmp_path, http_root, no_proxy):
    _, url = http_root
    mirrors = [f"{url}nothing/", f"{url}empty"]
    dm = MnistDataModule(data_dir=str(tmp_path / "data"), download=True, mirrors=mirrors)
    with pytest.raises(ConfigError) as info:
        dm.prepare_data()
    assert info.value.field == "download"
    assert f"{url}nothing/train-images-idx3-ubyte.gz" in info.value.problem
    assert f"{url}empty/train-images-idx3-ubyte.gz" in info.value.problem
    assert list((tmp_path / "data" / "mnist").iterdir()) == []  # nothing partial left behind


# --- Fashion-MNIST (real files) -----------------------------------------------------------------------------

def test_fashion_mnist_system_files(tmp_path):
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST is not in {FASHION_DIR}: "
                    "`apt-get install dataset-fashion-mnist` to run this test")
    dm = FashionMnistDataModule(data_dir=str(tmp_path), subset=1000, val_subset=500)
    dm.setup()
    assert dm.x_train.shape == (1000, 784)
    assert dm.x_val.shape == (500, 784)
    assert set(dm.y_train.unique().tolist()) == set(range(10))
    assert float(dm.x_train.min()) >= 0.0
    assert float(dm.x_train.max()) <= 1.0
    assert float(dm.x_train.max()) > 0.9
