"""The filesystem layer's helpers on local paths, and the URL forms they must leave alone (training/paths.py)."""

import os
import pathlib

from genimg_jax.training import paths


def test_files_under_finds_every_file_at_any_depth_like_os_walk(tmp_path):
    for name in ("a.txt", "d/b.bin", "d/e/f/c", "g/h"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "empty").mkdir()
    expected = {os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names}
    assert {os.fspath(path) for path in paths.files_under(tmp_path)} == expected
    assert len(expected) == 4


def test_append_text_creates_then_appends(tmp_path):
    path = paths.as_path(tmp_path / "log.jsonl")
    paths.append_text(path, "")
    assert path.read_text() == ""
    paths.append_text(path, "1\n")
    paths.append_text(path, "2\n")
    assert path.read_text() == "1\n2\n"


def test_a_bucket_url_keeps_its_scheme_where_pathlib_would_make_it_a_local_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert str(pathlib.Path("gs://b/run")) == "gs:/b/run"  # what the layer exists to avoid
    url = paths.absolute("gs://b/run")
    assert str(url) == "gs://b/run" and str(url / "checkpoints" / "4") == "gs://b/run/checkpoints/4"
    assert not paths.is_local(url) and paths.is_local("runs/x")
    assert str(paths.absolute("runs/x")) == str(tmp_path / "runs" / "x")
    assert str(paths.as_path("runs/x")) == "runs/x"  # messages keep the path as the user gave it
