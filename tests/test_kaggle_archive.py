"""Extraction of a downloaded competition archive: size limit, never through a symlink, nothing half-extracted."""
from __future__ import annotations

import os
import stat
import zipfile

import pytest

from kfold.files.archive import extract_zip, parse_size
from kfold.errors import DataError, UsageError


def make_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            if isinstance(name, zipfile.ZipInfo):
                zf.writestr(name, data)
            else:
                zf.writestr(name, data)
    return path


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_extracts_into_a_new_folder_at_once(tmp_path):
    archive = make_zip(tmp_path / "c.zip", [("a.csv", "x\n"), ("sub/b.npy", b"\x93NUMPY"), ("sub/", "")])
    files = extract_zip(archive, tmp_path / "data")
    assert files == [tmp_path / "data" / "a.csv", tmp_path / "data" / "sub" / "b.npy"]
    assert (tmp_path / "data" / "sub" / "b.npy").read_bytes() == b"\x93NUMPY"
    assert listing(tmp_path) == ["c.zip", "data", "data/a.csv", "data/sub", "data/sub/b.npy"]  # no staging left


@pytest.mark.parametrize("name, message", [
    ("../evil.txt", "points outside the folder"),
    ("/etc/evil.txt", "points outside the folder"),
    ("ok/../../evil.txt", "points outside the folder"),
    ("C:/evil.txt", "points outside the folder"),
])
def test_members_that_escape_are_refused(tmp_path, name, message):
    archive = make_zip(tmp_path / "c.zip", [("fine.csv", "1\n"), (name, "evil")])
    with pytest.raises(DataError, match=message):
        extract_zip(archive, tmp_path / "data")
    assert listing(tmp_path) == ["c.zip"]


def test_symlink_member_is_refused(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "c.zip", [("fine.csv", "1\n"), (info, "/etc/passwd")])
    with pytest.raises(DataError, match="'link' is a symbolic link; refusing"):
        extract_zip(archive, tmp_path / "data")
    assert listing(tmp_path) == ["c.zip"]


def test_never_writes_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = make_zip(tmp_path / "c.zip", [("sub/a.csv", "1\n")])
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="the data folder is a symbolic link"):
        extract_zip(archive, tmp_path / "link")
    data = tmp_path / "data"
    data.mkdir()
    (data / "sub").symlink_to(outside, target_is_directory=True)  # a folder on the way is a link
    with pytest.raises(DataError, match=r"data/sub: a path inside the data folder \(sub/a.csv\) is a symbolic link"):
        extract_zip(archive, data, force=True)
    assert list(outside.iterdir()) == []


def test_size_limit_is_checked_before_writing(tmp_path):
    archive = make_zip(tmp_path / "c.zip", [("a.bin", b"\0" * 3000), ("b.bin", b"\0" * 3000)], zipfile.ZIP_DEFLATED)
    assert archive.stat().st_size < 1000
    with pytest.raises(DataError, match=r"unpacks to 5.9 KiB, more than max_size 4.0 KiB"):
        extract_zip(archive, tmp_path / "data", max_size=parse_size("4K"))
    assert listing(tmp_path) == ["c.zip"]
    assert len(extract_zip(archive, tmp_path / "data", max_size=parse_size("6K"))) == 2


def test_damaged_member_leaves_nothing_half_extracted(tmp_path):
    archive = make_zip(tmp_path / "c.zip", [("a.csv", "first file\n"), ("b.csv", "second file, to be damaged\n")])
    raw = bytearray(archive.read_bytes())
    at = raw.find(b"second file")
    raw[at:at + 6] = b"XXXXXX"  # the CRC no longer matches
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="damaged zip file"):
        extract_zip(archive, tmp_path / "data")
    assert listing(tmp_path) == ["c.zip"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("mine\n")
    with pytest.raises(DataError, match="damaged zip file"):
        extract_zip(archive, tmp_path / "data", force=True)
    assert (tmp_path / "data" / "a.csv").read_text() == "mine\n"  # existing files untouched


def test_existing_files_need_force_and_are_replaced_whole(tmp_path):
    archive = make_zip(tmp_path / "c.zip", [("a.csv", "new\n")])
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("old\n")
    (data / "mine.txt").write_text("kept\n")
    with pytest.raises(DataError, match="a.csv: already exists; give force=True"):
        extract_zip(archive, data)
    assert (data / "a.csv").read_text() == "old\n"
    extract_zip(archive, data, force=True)
    assert (data / "a.csv").read_text() == "new\n" and (data / "mine.txt").read_text() == "kept\n"
    assert listing(tmp_path) == ["c.zip", "data", "data/a.csv", "data/mine.txt"]


def test_not_a_zip_and_bad_sizes(tmp_path):
    (tmp_path / "c.zip").write_bytes(b"<html>login page</html>")
    with pytest.raises(DataError, match="not a valid zip file"):
        extract_zip(tmp_path / "c.zip", tmp_path / "data")
    assert parse_size("2G") == 2 << 30 and parse_size("500M") == 500 << 20 and parse_size("1024") == 1024
    for bad in ("0", "-1K", "2X", "lots"):
        with pytest.raises(UsageError, match="max_size="):
            parse_size(bad)
    assert not os.path.exists(tmp_path / "data")


def test_disk_full_names_the_file_and_leaves_nothing_half_extracted(tmp_path, monkeypatch):
    """Issue 14 item 24: ENOSPC while unpacking names the member being written; no file appears."""
    import errno

    from kfold.files import archive as archive_module

    archive = make_zip(tmp_path / "c.zip", [("a.csv", "a" * 10), ("train/b.npy", "b" * (1 << 20))])
    real_open = open

    def full_disk(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "w" in mode and ".b.npy." in str(path):
            handle.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return handle

    monkeypatch.setattr(archive_module, "open", full_disk, raising=False)
    with pytest.raises(OSError) as caught:
        extract_zip(archive, tmp_path / "data")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename.endswith(os.path.join("train", "b.npy"))
    assert listing(tmp_path) == ["c.zip"]
