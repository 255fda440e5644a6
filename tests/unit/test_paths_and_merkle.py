from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bitswarm import merkle, paths
from bitswarm.errors import UnsafePathError


def test_resolve_inside_accepts_paths_below_the_root(tmp_path: Path) -> None:
    assert paths.resolve_inside(tmp_path, ("a", "b")) == tmp_path.resolve() / "a" / "b"


def test_resolve_inside_refuses_a_symlink_planted_to_lead_outside(tmp_path: Path) -> None:
    root = tmp_path / "downloads"
    outside = tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "name")
    with pytest.raises(UnsafePathError, match="outside"):
        paths.resolve_inside(root, ("name", "file"))


def test_resolve_inside_refuses_the_root_itself_and_parent_steps(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        paths.resolve_inside(tmp_path, ())
    with pytest.raises(UnsafePathError):
        paths.resolve_inside(tmp_path / "x", ("..", "y"))


def test_path_depth_is_limited() -> None:
    with pytest.raises(UnsafePathError, match="deeper"):
        paths.safe_path(["d"] * (paths.MAX_PATH_DEPTH + 1), "test")


def test_merkle_root_of_one_block_is_its_sha256() -> None:
    data = b"x" * 1000
    assert merkle.root(merkle.block_hashes(data), 1) == hashlib.sha256(data).digest()


def test_merkle_root_pads_with_zero_hashes_to_a_power_of_two() -> None:
    leaves = [hashlib.sha256(bytes([n])).digest() for n in range(3)]
    zero = bytes(32)
    left = hashlib.sha256(leaves[0] + leaves[1]).digest()
    right = hashlib.sha256(leaves[2] + zero).digest()
    assert merkle.root(leaves, 4) == hashlib.sha256(left + right).digest()


def test_piece_layer_padding_uses_the_root_of_an_empty_piece() -> None:
    pieces = [hashlib.sha256(b"p").digest()]
    pad = merkle.pad_hash(4)
    assert pad == hashlib.sha256(merkle.pad_hash(2) * 2).digest()
    assert merkle.root(pieces, 2, leaf_width=4) == hashlib.sha256(pieces[0] + pad).digest()


def test_tree_too_narrow_is_our_bug() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        merkle.root([bytes(32)] * 3, 2)
