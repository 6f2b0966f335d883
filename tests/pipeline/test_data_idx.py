"""IDX parsing against arrays written in the format, and every way a file can be broken."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.data import prepare
from pipeline.data.idx import idx_files, load_idx_split, read_idx
from pipeline.errors import DataError

from .conftest import idx_bytes


def test_round_trip_raw_gzip_and_gzip_without_suffix(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "raw").write_bytes(idx_bytes(x))
    (tmp_path / "z.gz").write_bytes(gzip.compress(idx_bytes(x)))
    (tmp_path / "z-no-suffix").write_bytes(gzip.compress(idx_bytes(x)))
    for name in ("raw", "z.gz", "z-no-suffix"):
        assert np.array_equal(read_idx(tmp_path / name), x)


def test_big_endian_int32_values(tmp_path):
    x = np.array([[-5, 70000], [1, 2]], dtype=">i4")
    (tmp_path / "f").write_bytes(struct.pack(">BBBB", 0, 0, 0x0C, 2) + struct.pack(">2I", 2, 2) + x.tobytes())
    assert np.array_equal(read_idx(tmp_path / "f"), x.astype(np.int64))


@pytest.mark.parametrize("content,match", [
    (b"not gzip at all", "not a readable IDX file"),  # named .gz but is not gzip
    (gzip.compress(idx_bytes(np.zeros((3, 2, 2), np.uint8)))[:-12], "not a readable IDX file"),  # cut gzip
    (gzip.compress(idx_bytes(np.zeros((3, 2, 2), np.uint8))[:-5]), r"truncated or corrupt: header says \(3, 2, 2\)"),
    (gzip.compress(b"\x00\x00\x08\x03\x00"), "truncated inside its header"),
    (gzip.compress(b"\x12\x34\x08\x03" + bytes(20)), "does not start with an IDX magic number"),
])
def test_broken_files_are_named_in_the_error(tmp_path, content, match):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        prepare(DataConfig(source=f"idx:{tmp_path}"), tmp_path / "out")
    assert "train-images-idx3-ubyte.gz" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_labels_that_do_not_match_the_images(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((4, 2, 2), np.uint8)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match=r"labels of shape \(5,\) for the 4 images"):
        load_idx_split(idx_files(tmp_path), "train")


def test_image_file_that_is_not_a_stack_of_images(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((4, 2), np.uint8)))
    with pytest.raises(DataError, match=r"shape \(4, 2\); images must be"):
        load_idx_split(idx_files(tmp_path), "train")


def test_directory_without_training_images_and_dotted_names(tmp_path):
    with pytest.raises(DataError, match="no training images in .*train-images-idx3-ubyte"):
        idx_files(tmp_path)
    (tmp_path / "train-images.idx3-ubyte").write_bytes(idx_bytes(np.zeros((4, 2, 2), np.uint8)))
    assert idx_files(tmp_path) == {("train", "images"): tmp_path / "train-images.idx3-ubyte"}
    p = prepare(DataConfig(source=f"idx:{tmp_path}", test_fraction=0.25), tmp_path / "out")
    assert (p.meta.n_train, p.meta.n_test, p.meta.num_classes, p.meta.split[:6]) == (3, 1, None, "random")
