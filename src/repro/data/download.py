"""Generic, resumable downloads with sha256 verification, and safe zip unpacking.

``download`` streams a ``file://``, ``http://`` or ``https://`` URL to ``<dest>.part`` and renames
it to ``dest`` only when complete (and, if a digest is given, verified). An interrupted download
keeps its ``.part`` file; the next call resumes it with an HTTP ``Range`` request when the server
answers ``206 Partial Content`` (and restarts from zero when it does not).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # 1 MiB


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _open(url: str, offset: int, timeout: float):
    """Open ``url`` starting at byte ``offset``; return ``(stream, resumed, total_or_None)``."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        fh = open(path, "rb")
        size = path.stat().st_size
        if 0 < offset <= size:
            fh.seek(offset)
            return fh, True, size
        return fh, False, size
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r} in {url}")
    req = urllib.request.Request(url, headers={"User-Agent": "repro-downloader/1"})
    if offset > 0:
        req.add_header("Range", f"bytes={offset}-")
        # GitHub release assets are served from Azure blob storage, which honours Range only
        # with an explicit API version (as alfworld-download does).
        req.add_header("x-ms-version", "2020-04-08")
    resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (scheme checked above)
    length = resp.headers.get("Content-Length")
    if offset > 0 and resp.status == 206:
        total = None
        rng = resp.headers.get("Content-Range", "")  # "bytes start-end/total"
        if "/" in rng and rng.rsplit("/", 1)[1].isdigit():
            total = int(rng.rsplit("/", 1)[1])
        return resp, True, total
    return resp, False, int(length) if length and length.isdigit() else None


def download(
    url: str,
    dest: str | os.PathLike,
    expected_sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> str:
    """Download ``url`` to ``dest`` and return the file's hex sha256.

    Bytes go to ``<dest>.part`` first; an existing ``.part`` is resumed (HTTP Range where the
    server supports it). Network errors are retried ``retries`` times, each retry resuming.
    On a digest mismatch both the ``.part`` and ``dest`` are removed and ``ValueError`` names the
    file, the expected and the actual digest. ``dest`` appears only when complete and verified.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    name = dest.name
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            stream, resumed, total = _open(url, offset, timeout)
        except (urllib.error.URLError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 416 and offset > 0:
                # Range not satisfiable: the .part is complete (or corrupt: the digest decides).
                break
            attempt += 1
            if attempt > retries:
                raise
            log.warning("download %s failed (%s); retry %d/%d", url, exc, attempt, retries)
            time.sleep(min(2.0**attempt, 30.0))
            continue
        if offset and not resumed:
            log.info("%s: server ignored the Range request; restarting from byte 0", name)
            offset = 0
        elif offset:
            log.info("%s: resuming at byte %d", name, offset)
        done = offset
        last_log = time.monotonic()
        try:
            with stream, open(part, "ab" if offset else "wb") as out:
                for block in iter(lambda: stream.read(_CHUNK), b""):
                    out.write(block)
                    done += len(block)
                    if progress and time.monotonic() - last_log > 5.0:
                        last_log = time.monotonic()
                        pct = f" ({100.0 * done / total:.1f}%)" if total else ""
                        log.info("%s: %.1f MB%s", name, done / 1e6, pct)
        except (urllib.error.URLError, OSError) as exc:
            attempt += 1
            if attempt > retries:
                raise
            log.warning("download %s interrupted (%s); retry %d/%d", url, exc, attempt, retries)
            time.sleep(min(2.0**attempt, 30.0))
            continue
        if total is not None and done < total:
            attempt += 1
            if attempt > retries:
                raise OSError(f"{name}: incomplete download ({done} of {total} bytes)")
            continue
        break

    digest = _sha256(part)
    if expected_sha256 is not None and digest.lower() != expected_sha256.lower():
        part.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        raise ValueError(
            f"sha256 mismatch for {name}: expected {expected_sha256.lower()}, got {digest}"
        )
    os.replace(part, dest)
    if progress:
        log.info("%s: %d bytes, sha256 %s", name, dest.stat().st_size, digest)
    return digest


def _extract(archive, handle, dest_dir: str | os.PathLike) -> list[str]:
    """Write every member of an open ``zipfile.ZipFile`` / ``rarfile.RarFile`` ``handle`` under
    ``dest_dir``; return the file members' names. All names are checked before anything is written."""
    members = []
    for info in handle.infolist():
        p = PurePosixPath(info.filename.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"unsafe path {info.filename!r} in {archive}")
        members.append((info, p))
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for info, p in members:
        target = dest_dir.joinpath(*p.parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with handle.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        names.append(info.filename)
    return names


def unpack_archive(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> list[str]:
    """Extract a ``.zip`` or ``.rar`` ``archive`` (by its suffix) into ``dest_dir``; return the
    extracted member names. RAR goes through ``rarfile``: stored entries are read in Python,
    compressed ones need one of the tools it drives (``unrar``, ``unar``, ``bsdtar``, ``7z``) on the
    PATH; without one the ``RuntimeError`` says which to install."""
    suffix = Path(archive).suffix.lower()
    if suffix == ".zip":
        return unpack_zip(archive, dest_dir)
    if suffix == ".rar":
        return unpack_rar(archive, dest_dir)
    raise ValueError(f"{archive}: unknown archive type {suffix!r} (allowed: .zip, .rar)")


def unpack_rar(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> list[str]:
    """``unpack_zip`` for RAR archives (see ``unpack_archive``)."""
    import rarfile  # noqa: PLC0415  (only the paper-scale Mulan fetchers read RAR)

    try:
        with rarfile.RarFile(archive) as rf:
            return _extract(archive, rf, dest_dir)
    except rarfile.NotRarFile as exc:
        raise ValueError(f"{archive} is not a RAR archive (an error page instead of the file?)") from exc
    except rarfile.RarCannotExec as exc:
        raise RuntimeError(f"{archive}: its entries are compressed and no RAR tool was found; install one "
                           "of unrar, unar, bsdtar (Debian: libarchive-tools) or 7z and retry") from exc
    except rarfile.Error as exc:
        raise ValueError(f"{archive}: cannot read the RAR archive: {exc}") from exc


def unpack_zip(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> list[str]:
    """Extract ``archive`` into ``dest_dir``; return the extracted member names.

    Members with absolute paths or ``..`` components are refused (``ValueError``), so an archive
    cannot write outside ``dest_dir``. Callers wanting atomicity extract into a
    ``repro.io.atomic_dir``.
    """
    with zipfile.ZipFile(archive) as zf:
        return _extract(archive, zf, dest_dir)
