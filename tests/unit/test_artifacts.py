"""Atomic writes: all or nothing."""

from __future__ import annotations

import pytest

from sentinel.artifacts import atomic_path, atomic_write_text, read_json_artifact, sha256_file
from sentinel.errors import ModelError


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]
    assert sha256_file(target) == "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"


def test_failed_writer_leaves_target_untouched(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("good")

    def write_half_then_fail() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_half_then_fail()
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    target = tmp_path / "f.txt"
    atomic_write_text(target, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_json_artifact_must_exist_parse_and_be_an_object(tmp_path):
    path = tmp_path / "card.json"
    with pytest.raises(ModelError, match=r"no model card; run `sentinel train` first"):
        read_json_artifact(path, "model card", "sentinel train", ModelError)
    path.write_text("{not json")
    with pytest.raises(ModelError, match="unreadable model card: Expecting property name"):
        read_json_artifact(path, "model card", "sentinel train", ModelError)
    path.write_text("[1, 2]")
    with pytest.raises(ModelError, match="unreadable model card: a JSON list, not an object"):
        read_json_artifact(path, "model card", "sentinel train", ModelError)
    path.write_text('{"window": 50}')
    assert read_json_artifact(path, "model card", "sentinel train", ModelError) == {"window": 50}
