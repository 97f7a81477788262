"""The IM2LATEX-100K downloader against a real HTTP server on 127.0.0.1 serving files in the real format."""
import hashlib
import io
import json
import logging
import re
import tarfile

import numpy as np
import pytest
from PIL import Image

from im2latex import Im2LatexError
from im2latex.data import download, layout
from im2latex.data.download import download_im2latex_100k, safe_extract
from im2latex.files import atomic_dir
from tests.conftest import reply

FORMULAS = "\\frac{a}{b}\nx^2 \r + y\n\\alpha_i\n".encode()  # a bare \r inside a formula, as in the real file


def _png(ink_at: int) -> bytes:
    """A page like the real ones: transparent background, black ink."""
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[10:20, ink_at:ink_at + 20, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _archive(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return buffer.getvalue()


def dataset_files() -> dict[str, bytes]:
    return {
        "im2latex_formulas.lst": FORMULAS,
        "im2latex_train.lst": b"0 aaa basic\n1 bbb basic\n",
        "im2latex_validate.lst": b"2 ccc basic\n",
        "im2latex_test.lst": b"",
        "formula_images.tar.gz": _archive([(f"formula_images/{n}.png", _png(i * 10)) for i, n in enumerate(["aaa", "bbb", "ccc"])]),
    }


def _sums(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.md5(data).hexdigest()


class Mirrors:
    """Serves `files` under /good and /bad (always 404) and the manifest of `published` at /record, with
    Range support and injectable faults; `handle` answers the requests of a loopback server."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.published = files, dict(files)
        self.truncate_once: set[str] = set()
        self.record: tuple[int, bytes] | None = None  # what /record answers instead of the manifest
        self.requests: list[tuple[str, str | None]] = []
        self.url = ""

    def handle(self, h) -> None:
        self.requests.append((h.path, h.headers.get("Range")))
        if h.path == "/record":
            if self.record:
                return reply(h, *self.record)
            body = json.dumps({"files": [{"key": k, "size": len(v), "checksum": "md5:" + hashlib.md5(v).hexdigest()}
                                         for k, v in self.published.items()]}).encode()
            return reply(h, 200, body)
        mirror, _, name = h.path.strip("/").partition("/")
        if mirror != "good" or name not in self.files:
            return reply(h, 404, b"not found")
        body, start = self.files[name], 0
        if h.headers.get("Range"):
            start = int(h.headers["Range"].removeprefix("bytes=").rstrip("-"))
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            h.send_response(200)
        h.send_header("Content-Length", str(len(body) - start))
        h.end_headers()
        if name in self.truncate_once:  # the connection breaks halfway
            self.truncate_once.discard(name)
            h.wfile.write(body[start:start + (len(body) - start) // 2])
            h.close_connection = True
            return
        h.wfile.write(body[start:])


@pytest.fixture
def server(loopback, monkeypatch):
    """The mirrors, with the project's pinned checksums replaced by those of the tiny test files."""
    mirrors = Mirrors(dataset_files())
    mirrors.url = loopback(mirrors.handle).url
    monkeypatch.setattr(download, "PUBLISHED", {k: _sums(v) for k, v in mirrors.files.items()})
    return mirrors


def _download(server, tmp_path, manifest_url=None):
    target = tmp_path / "raw"
    with atomic_dir(target) as out:
        download_im2latex_100k(out, [server.url + "/bad", server.url + "/good"],
                               server.url + "/record" if manifest_url is None else manifest_url, tmp_path / "cache")
    return target


def test_download_falls_back_to_the_mirror_and_writes_the_layout(server, tmp_path):
    root = _download(server, tmp_path)
    assert layout.validate(root) == {"train": 2, "validate": 1, "test": 0}
    assert layout.read_formulas(root) == ["\\frac{a}{b}", "x^2 \r + y", "\\alpha_i"]
    assert sorted(p.name for p in (root / layout.IMAGES).iterdir()) == ["aaa.png", "bbb.png", "ccc.png"]
    assert any(path.startswith("/bad/") for path, _ in server.requests)  # the first mirror was tried


def test_broken_transfer_is_resumed_with_a_range_request(server, tmp_path):
    server.truncate_once.add("formula_images.tar.gz")
    _download(server, tmp_path)
    ranges = [r for path, r in server.requests if path == "/good/formula_images.tar.gz"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_second_run_uses_the_verified_cache(server, tmp_path):
    _download(server, tmp_path)
    before = len(server.requests)
    _download(server, tmp_path)
    assert len(server.requests) == before + 1  # only the manifest


def test_corrupted_file_fails_cleanly(server, tmp_path):
    data = bytearray(server.files["im2latex_train.lst"])
    data[0] ^= 1
    server.files["im2latex_train.lst"] = bytes(data)
    with pytest.raises(Im2LatexError, match="could not download im2latex_train.lst: .*md5 mismatch"):
        _download(server, tmp_path)
    assert not (tmp_path / "raw").exists()
    assert not (tmp_path / "cache" / "im2latex_train.lst").exists()


def test_missing_everywhere_is_a_clear_error(server, tmp_path):
    del server.files["im2latex_test.lst"]
    with pytest.raises(Im2LatexError, match="could not download im2latex_test.lst: .*HTTP 404"):
        _download(server, tmp_path)
    assert not (tmp_path / "raw").exists()


def test_pinned_table_covers_every_file():
    assert sorted(download.PUBLISHED) == sorted(download.FILES)
    for size, md5 in download.PUBLISHED.values():
        assert (size is None or size > 0) and re.fullmatch("[0-9a-f]{32}", md5)


@pytest.mark.parametrize("fault", ["500", "not json", "wrong shape", "refused"])
def test_mirror_works_with_the_manifest_host_down(server, tmp_path, caplog, fault):
    answers = {"500": (500, b"oops"), "not json": (200, b"<html>"), "wrong shape": (200, b'{"files": 3}')}
    server.record = answers.get(fault)
    manifest_url = "http://127.0.0.1:9/record" if fault == "refused" else None  # port 9: nothing listens
    with caplog.at_level(logging.WARNING, logger=download.__name__):
        root = _download(server, tmp_path, manifest_url)
    assert layout.validate(root) == {"train": 2, "validate": 1, "test": 0}
    assert "going on with the checksums pinned in the project" in caplog.text


def test_md5_alone_verifies_and_resumes_when_no_size_is_known(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "PUBLISHED", {k: (None, md5) for k, (_, md5) in download.PUBLISHED.items()})
    server.record = (500, b"")
    server.truncate_once.add("formula_images.tar.gz")
    root = _download(server, tmp_path)
    assert layout.validate(root) == {"train": 2, "validate": 1, "test": 0}
    ranges = [r for path, r in server.requests if path == "/good/formula_images.tar.gz"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_file_not_matching_the_pinned_md5_is_rejected_even_if_the_manifest_vouches_for_it(server, tmp_path, caplog):
    tampered = server.files["im2latex_train.lst"].replace(b"bbb", b"bbc")
    server.files["im2latex_train.lst"] = server.published["im2latex_train.lst"] = tampered
    with caplog.at_level(logging.WARNING, logger=download.__name__), \
            pytest.raises(Im2LatexError, match="could not download im2latex_train.lst: .*md5 mismatch"):
        _download(server, tmp_path)
    assert "im2latex_train.lst" in caplog.text and "pins" in caplog.text
    assert not (tmp_path / "raw").exists()
    assert not (tmp_path / "cache" / "im2latex_train.lst").exists()
    assert not (tmp_path / "cache" / "im2latex_train.lst.part").exists()


def test_manifest_disagreeing_with_the_pinned_table_does_not_block(server, tmp_path, caplog):
    server.published["im2latex_validate.lst"] = b"something else\n"
    listed, pinned = _sums(server.published["im2latex_validate.lst"]), download.PUBLISHED["im2latex_validate.lst"]
    with caplog.at_level(logging.WARNING, logger=download.__name__):
        root = _download(server, tmp_path)
    assert layout.validate(root) == {"train": 2, "validate": 1, "test": 0}
    warning = next(r.getMessage() for r in caplog.records if "im2latex_validate.lst" in r.getMessage())
    assert listed[1] in warning and pinned[1] in warning and str(listed[0]) in warning and str(pinned[0]) in warning


def test_manifest_supplies_a_file_the_project_does_not_pin(server, tmp_path, monkeypatch):
    monkeypatch.delitem(download.PUBLISHED, "im2latex_test.lst")
    assert layout.validate(_download(server, tmp_path)) == {"train": 2, "validate": 1, "test": 0}


def test_unpinned_file_with_the_manifest_down_is_a_clear_error(server, tmp_path, monkeypatch):
    monkeypatch.delitem(download.PUBLISHED, "im2latex_test.lst")
    server.record = (500, b"")
    with pytest.raises(Im2LatexError, match="no published checksum for im2latex_test.lst"):
        _download(server, tmp_path)
    assert not (tmp_path / "raw").exists()
    assert not any(path.startswith(("/good/", "/bad/")) for path, _ in server.requests)  # nothing fetched


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("members, message", [
    ([("../evil.png", b"x")], "outside the target folder"),
    ([("/tmp/evil.png", b"x")], "outside the target folder"),
    ([_link("formula_images/a.png", "/etc/passwd")], "link"),
    ([_link("formula_images/a.png", "formula_images/b.png", tarfile.LNKTYPE)], "link"),
])
def test_unsafe_archive_is_refused(server, tmp_path, members, message):
    server.files["formula_images.tar.gz"] = server.published["formula_images.tar.gz"] = _archive(members)
    download.PUBLISHED["formula_images.tar.gz"] = _sums(server.files["formula_images.tar.gz"])
    with pytest.raises(Im2LatexError, match=message):
        _download(server, tmp_path)
    assert not (tmp_path / "raw").exists() and not (tmp_path / "evil.png").exists()


def test_size_caps(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_archive([("formula_images/a.png", b"x" * 1000), ("formula_images/b.png", b"y")]))
    with pytest.raises(Im2LatexError, match="more than 500 bytes"):
        safe_extract(archive, tmp_path / "out", max_bytes=500)
    with pytest.raises(Im2LatexError, match="more than the cap of 1"):
        safe_extract(archive, tmp_path / "out", max_members=1)
