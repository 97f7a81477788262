"""Download IM2LATEX-100K from its published locations: verified, resumable, atomic, safely extracted."""
import hashlib
import http.client
import json
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from im2latex import Im2LatexError
from im2latex.data import layout
from im2latex.files import atomic_dir

log = logging.getLogger(__name__)

ARCHIVE = "formula_images.tar.gz"
FILES = [layout.FORMULAS] + [layout.split_file(s) for s in layout.SPLITS] + [ARCHIVE]
MAX_MEMBERS = 200_000  # the real archive holds ~103k images
MAX_EXTRACTED_BYTES = 8 << 30
ATTEMPTS = 3  # per mirror and file
TIMEOUT_S = 60

# The published md5 of each file, pinned in the project so that the download does not depend on the
# record's host being up. Source: the Zenodo record page of IM2LATEX-100K, https://zenodo.org/record/56198
# ("Files" table: name, md5, size); the same md5s appear in other public downloaders of this record.
# That page gives sizes only rounded (292.2 MB, 12.3 MB, 1.9 MB, 213.7 kB, 237.4 kB) and no source found
# gave exact byte counts, so the size is None: it is taken from the manifest when that answers and
# agrees on the md5, and otherwise the md5 alone decides.
PUBLISHED: dict[str, tuple[int | None, str]] = {
    "im2latex_formulas.lst": (None, "974c0a14f0daa6d91ecd0e625f1ddf52"),
    "im2latex_train.lst": (None, "d5607c37aa00576098a9e4bad84a7040"),
    "im2latex_validate.lst": (None, "cf6eeee02bc443b1b9557685fbfe7ea5"),
    "im2latex_test.lst": (None, "1bc17b865796dca5df15250b4da7804f"),
    "formula_images.tar.gz": (None, "cf25f2408f1ea09bbd096890a6361533"),
}


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "im2latex" / "im2latex-100k"


def fetch_manifest(url: str) -> dict[str, tuple[int, str]]:
    """Published size and md5 of each file, from a Zenodo-style record: {"files": [{"key", "size", "checksum": "md5:…"}]}."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            record = json.load(response)
        return {f["key"]: (int(f["size"]), f["checksum"].removeprefix("md5:")) for f in record["files"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, http.client.HTTPException) as e:
        raise Im2LatexError(f"cannot read the dataset's published checksums from {url}: {e}") from None


def _describe(size: int | None, md5: str) -> str:
    return f"md5 {md5}" if size is None else f"{size} bytes with md5 {md5}"


def published_checksums(manifest_url: str) -> dict[str, tuple[int | None, str]]:
    """Size (None where unknown) and md5 to verify each file of FILES by: the pinned values, cross-checked
    against the manifest, which is only the source for a file the project does not pin."""
    manifest: dict[str, tuple[int, str]] = {}
    if manifest_url:
        try:
            manifest = fetch_manifest(manifest_url)
        except Im2LatexError as e:
            log.warning("%s; going on with the checksums pinned in the project", e)
    checksums = {}
    for name in FILES:
        pinned, listed = PUBLISHED.get(name), manifest.get(name)
        if pinned is None and listed is None:
            raise Im2LatexError(f"no published checksum for {name}: the project pins none and "
                                f"{manifest_url or 'no manifest'} lists none")
        if pinned is None:
            checksums[name] = listed
        elif listed is None:
            checksums[name] = pinned
        elif pinned[1] == listed[1] and pinned[0] in (None, listed[0]):
            checksums[name] = listed  # agrees; the manifest may add the size the project lacks
        else:
            # The pinned values win and the download goes on: every file is verified against them
            # anyway, so a manifest that changed (a new record version, an edit, a bad proxy) cannot let a
            # wrong file in, and stopping would only block a mirror that serves the right one.
            log.warning("%s: %s publishes %s, but the project pins %s; verifying against the pinned values",
                        name, manifest_url, _describe(*listed), _describe(*pinned))
            checksums[name] = pinned
    return checksums


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _transfer(url: str, part: Path, size: int | None) -> None:
    """Append to `part` what it lacks of `url` (an HTTP Range request when it already holds some)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        length, received = response.headers.get("Content-Length"), 0
        with open(part, "ab" if have else "wb") as f, \
                tqdm(total=size, initial=have, unit="B", unit_scale=True, desc=part.stem, leave=False) as bar:
            while block := response.read(1 << 20):
                f.write(block)
                received += len(block)
                bar.update(len(block))
    # read() ends quietly when the connection drops; without a known size only Content-Length tells a
    # broken transfer (to resume) from a finished one
    if length and length.isdigit() and received < int(length):
        raise http.client.IncompleteRead(b"", int(length) - received)


def download_file(name: str, mirrors: list[str], size: int | None, md5: str, cache: Path) -> Path:
    """Fetch one file into `cache`, trying each mirror with resumed retries; verified by md5, and by size
    when it is known."""
    target, part = cache / name, cache / f"{name}.part"
    if target.exists() and size in (None, target.stat().st_size) and _md5(target) == md5:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _transfer(url, part, size)
            except urllib.error.HTTPError as e:
                errors.append(f"{url}: HTTP {e.code}")
                if e.code == 416:  # asked past the end: the partial file is bad
                    part.unlink(missing_ok=True)
                    continue
                break  # 404 and friends: this mirror lacks the file
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{url}: {e or type(e).__name__}")
                log.warning("%s: transfer broke (%s), attempt %d of %d", url, e or type(e).__name__, attempt, ATTEMPTS)
                continue
            got = part.stat().st_size
            if size is not None and got < size:
                errors.append(f"{url}: got {got} of {size} bytes")
                continue
            if size in (None, got) and _md5(part) == md5:
                os.replace(part, target)
                return target
            errors.append(f"{url}: size/md5 mismatch (got {got} bytes, expected {_describe(size, md5)})")
            part.unlink()
    part.unlink(missing_ok=True)
    raise Im2LatexError(f"could not download {name}: {'; '.join(errors[-3:])}")


def safe_extract(archive: Path, dest: Path, max_members: int = MAX_MEMBERS,
                 max_bytes: int = MAX_EXTRACTED_BYTES) -> None:
    """Extract a tar archive, refusing links, special files, paths outside `dest` and oversize content."""
    root = dest.resolve()
    try:
        with tarfile.open(archive) as tar:
            members, total = tar.getmembers(), 0
            if len(members) > max_members:
                raise Im2LatexError(f"{archive.name}: {len(members)} members, more than the cap of {max_members}")
            for m in members:
                if not (m.isfile() or m.isdir()):
                    raise Im2LatexError(f"{archive.name}: refusing {m.name!r}: not a regular file or folder (link?)")
                if not (root / m.name).resolve().is_relative_to(root) or os.path.isabs(m.name):
                    raise Im2LatexError(f"{archive.name}: refusing {m.name!r}: it points outside the target folder")
                total += m.size
                if total > max_bytes:
                    raise Im2LatexError(f"{archive.name}: unpacks to more than {max_bytes} bytes")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise Im2LatexError(f"{archive.name}: cannot extract: {e}") from None


def download_im2latex_100k(out: Path, mirrors: list[str], manifest_url: str, cache: Path | None = None) -> None:
    """Download, verify and unpack IM2LATEX-100K into `out` (IM2LATEX-100K layout)."""
    cache = cache or default_cache()
    checksums = published_checksums(manifest_url)
    paths = {name: download_file(name, mirrors, *checksums[name], cache) for name in FILES}
    for name in FILES[:-1]:
        shutil.copyfile(paths[name], out / name)
    with atomic_dir(out / layout.IMAGES) as images:
        safe_extract(paths[ARCHIVE], images)
        inner = images / layout.IMAGES  # the archive holds formula_images/…; flatten it
        if inner.is_dir():
            for png in inner.iterdir():
                os.replace(png, images / png.name)
            inner.rmdir()
