"""Data loading: the built-in digits, users' .npy/.npz arrays, the bit-packed binarized MNIST,
and errors a user can act on."""

import numpy as np
import pytest

from vifit.amortized.data import DataError, fixed_split, load_dataset, spread_subset


def test_digits_are_binarized_with_a_fixed_split():
    d = load_dataset("digits")
    assert d.train.shape == (1438, 64) and d.test.shape == (359, 64)
    assert d.kind == "binary" and d.image_shape == (8, 8)
    assert set(np.unique(d.train)) == {0, 1}
    assert d.train_labels.shape == (1438,) and set(np.unique(d.test_labels)) == set(range(10))
    again = load_dataset("digits")
    np.testing.assert_array_equal(d.test, again.test)
    raw = load_dataset("digits-raw")
    assert raw.kind == "discrete" and raw.n_categories == 17
    np.testing.assert_array_equal((raw.test >= 8).astype(np.uint8), d.test)


def test_fixed_split_holds_out_every_fifth_and_subsets_spread_evenly():
    tr, te = fixed_split(10)
    assert list(te) == [4, 9] and len(tr) == 8
    x = np.arange(100)[:, None]
    sub = spread_subset(x, 10)[:, 0]
    assert len(sub) == 10 and sub[0] == 0 and sub[-1] == 99 and np.all(np.diff(sub) >= 10)
    assert spread_subset(x, None) is x and spread_subset(x, 500) is x


def test_npz_with_train_and_test_keys_and_images(tmp_path):
    rng = np.random.default_rng(0)
    train = (rng.random((20, 4, 4)) < 0.5).astype(np.uint8)
    test = (rng.random((5, 4, 4)) < 0.5).astype(np.uint8)
    path = tmp_path / "mine.npz"
    np.savez(path, train=train, test=test, train_labels=np.arange(20), test_labels=np.arange(5))
    d = load_dataset(str(path))
    assert d.kind == "binary" and d.image_shape == (4, 4) and d.train.shape == (20, 16)
    np.testing.assert_array_equal(d.test, test.reshape(5, 16))
    np.testing.assert_array_equal(d.test_labels, np.arange(5))


def test_npz_with_x_key_and_npy_are_split_and_typed(tmp_path):
    x = np.random.default_rng(1).normal(size=(30, 3))
    np.savez(tmp_path / "real.npz", x=x, labels=np.arange(30))
    d = load_dataset(str(tmp_path / "real.npz"))
    assert d.kind == "real" and d.train.dtype == np.float32 and d.test.shape == (6, 3)
    np.testing.assert_array_equal(d.test_labels, [4, 9, 14, 19, 24, 29])
    counts = np.random.default_rng(2).integers(0, 5, size=(30, 7))
    np.save(tmp_path / "counts.npy", counts)
    d = load_dataset(str(tmp_path / "counts.npy"))
    assert d.kind == "discrete" and d.n_categories == int(counts.max()) + 1


def test_binarized_mnist_bit_packed_format(tmp_path):
    rng = np.random.default_rng(3)
    parts = {k: (rng.random((n, 784)) < 0.2).astype(np.uint8)
             for k, n in [("train", 6), ("valid", 3), ("test", 4)]}
    path = tmp_path / "bm.npz"
    np.savez(path, **{k: np.packbits(v, axis=1) for k, v in parts.items()})
    d = load_dataset(f"binarized_mnist:{path}")
    assert d.image_shape == (28, 28) and d.kind == "binary"
    np.testing.assert_array_equal(d.train, parts["train"])
    np.testing.assert_array_equal(d.valid, parts["valid"])
    np.testing.assert_array_equal(d.heldout, parts["valid"])


@pytest.mark.parametrize("make, spec, message", [
    (None, "nothing.npz", "not found"),
    (None, "mnist", "unknown data"),
    (lambda p: np.savez(p / "k.npz", images=np.zeros((5, 2))), "k.npz", "name the training array"),
    (lambda p: np.save(p / "nan.npy", np.full((10, 2), np.nan)), "nan.npy", "NaN"),
    (lambda p: np.savez(p / "bm.npz", train=np.zeros((2, 98), np.uint8)), "binarized_mnist:bm.npz",
     "lacks the keys"),
])
def test_bad_data_is_refused_with_the_fix(tmp_path, make, spec, message):
    if make is not None:
        make(tmp_path)
    spec = spec.replace("bm.npz", str(tmp_path / "bm.npz")) if spec.startswith("binarized") \
        else (str(tmp_path / spec) if spec.endswith((".npz", ".npy")) else spec)
    with pytest.raises(DataError, match=message):
        load_dataset(spec)
