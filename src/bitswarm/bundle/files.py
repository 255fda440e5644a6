"""Bundles on disk: sealing a folder into a bundle torrent, and opening one into plaintext.

Calls block (file reads and writes); the asyncio layer runs them in a thread. Plaintext
is never written under its final name before the whole file has authenticated: it goes to
a temporary name beside it and is renamed at the end, so a wrong key or a tampered segment
leaves no file that looks good.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bitswarm import bencode, paths
from bitswarm.bundle import format as fmt
from bitswarm.create import CreateOptions, auto_piece_length, create
from bitswarm.errors import BitswarmError, UsageError
from bitswarm.metainfo import Torrent, TorrentVersion
from bitswarm.storage.layout import Segment

PARTIAL_SUFFIX = ".bitswarm-partial"


@dataclass(frozen=True, slots=True)
class SealedBundle:
    torrent: bytes
    folder: Path  # the sealed files, the torrent's top folder
    manifest: fmt.Manifest


def torrent_name(bundle_id: bytes) -> str:
    """The name the torrent shows: opaque, from the bundle's random id."""
    return f"bundle-{bundle_id.hex()[:16]}"


def seal_folder(
    source: Path,
    data_dir: Path,
    *,
    content_key: bytes,
    bundle_id: bytes,
    title: str | None = None,
    cover: bytes | None = None,
    options: CreateOptions | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SealedBundle:
    """Seal the file or folder ``source`` into ``data_dir/<torrent name>/`` and make its torrent
    (with ``cover``, a public image, in the clear part of its header).

    ``options`` are those of a plain torrent; the version must be v2 or hybrid (BEP 52
    aligns files to pieces) and the piece length a multiple of the segment."""
    options = options or CreateOptions()
    if options.version is TorrentVersion.V1:
        raise UsageError("a bundle is a v2 or hybrid torrent: its pieces must start with its files")
    if options.piece_length is not None and options.piece_length % fmt.SEGMENT:
        raise UsageError(f"a bundle's piece length is a multiple of {fmt.SEGMENT // 1024} KiB")
    plain = _plain_files(source)
    manifest = fmt.Manifest(
        title if title is not None else source.name,
        tuple(fmt.ManifestFile(path, size, fmt.media_type(path[-1])) for path, size, _ in plain),
    )
    fmt.decode_manifest(fmt.encode_manifest(manifest))  # what we seal must be what we accept
    folder = data_dir / torrent_name(bundle_id)
    folder.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, _SealJob] = {}
    for index, (_, size, location) in enumerate(plain):
        sealer = fmt.FileSealer(fmt.file_key(content_key, bundle_id, index), size)
        target = folder / fmt.sealed_name(index, len(plain))
        with target.open("wb") as made:
            made.truncate(sealer.sealed_size)
        jobs[target.name] = _SealJob(location, sealer, target)
    sealed_total = sum(fmt.ciphertext_size(size) for _, size, _ in plain)
    header = fmt.BundleHeader(
        bundle_id, fmt.seal_manifest(manifest, content_key, bundle_id), cover,
        fmt.cover_type(cover) if cover is not None else None,
    )  # fmt: skip
    piece_length = options.piece_length or max(fmt.MIN_PIECE_LENGTH, auto_piece_length(sealed_total))
    options = replace(options, piece_length=piece_length, extra_info={fmt.INFO_KEY: fmt.header_value(header)})
    buffers = threading.local()
    torrent = create(
        folder, options, on_start=on_start, on_progress=on_progress,
        segment_source=lambda span: _seal(jobs, span, buffers, piece_length),
    )  # fmt: skip
    for _, size, location in plain:
        if location.stat().st_size != size:
            raise UsageError(f"{location}: changed while it was being sealed")
    return SealedBundle(torrent, folder, manifest)


@dataclass(frozen=True, slots=True)
class _SealJob:
    plain: Path
    sealer: fmt.FileSealer
    target: Path


def _seal(jobs: dict[str, _SealJob], span: Segment, buffers: threading.local, piece_length: int) -> memoryview:
    job = jobs[span.entry.path[-1]]
    sealer = job.sealer
    if not hasattr(buffers, "piece"):
        # Reused per thread: a fresh buffer per piece or segment costs a page fault per 4 KiB.
        buffers.piece = memoryview(bytearray(piece_length))
        buffers.plain = memoryview(bytearray(fmt.PLAIN_SEGMENT))
    piece: memoryview = buffers.piece
    plain: memoryview = buffers.plain
    first = span.file_offset // fmt.SEGMENT
    end = -(-(span.file_offset + span.length) // fmt.SEGMENT)
    at = 0
    with job.plain.open("rb", buffering=0) as reader, job.target.open("r+b", buffering=0) as writer:
        for index in range(first, end):
            wanted = sealer.plain_length(index)
            if os.preadv(reader.fileno(), [plain[:wanted]], index * fmt.PLAIN_SEGMENT) != wanted:
                raise UsageError(f"{job.plain}: changed while it was being sealed")
            sealed = wanted + fmt.TAG_BYTES
            if at + sealed > span.length:
                raise UsageError(f"{job.plain}: changed while it was being sealed")
            sealer.seal_into(index, plain[:wanted], piece[at : at + sealed])
            at += sealed
        if at != span.length:
            raise UsageError(f"{job.plain}: changed while it was being sealed")
        view = piece[:at]
        if os.pwrite(writer.fileno(), view, span.file_offset) != at:
            raise UsageError(f"{job.target}: short write (disk full?)")
    return view


def _plain_files(source: Path) -> list[tuple[tuple[str, ...], int, Path]]:
    """(path inside the bundle, size, where it is) of each file, in the order create takes."""
    if source.is_file():
        return [((source.name,), source.stat().st_size, source)]
    if not source.is_dir():
        raise UsageError(f"{source}: not a file or folder")
    found = []
    for folder, subfolders, filenames in os.walk(source):
        subfolders[:] = sorted(sub for sub in subfolders if not (Path(folder) / sub).is_symlink())
        for filename in filenames:
            location = Path(folder) / filename
            if location.is_symlink() or not location.is_file():
                continue
            path = location.relative_to(source).parts
            found.append((path, location.stat().st_size, location))
    if not found:
        raise UsageError(f"{source}: no files to bundle")
    if len(found) > fmt.MAX_FILES:
        raise UsageError(f"{source}: more than {fmt.MAX_FILES} files")
    found.sort(key=lambda item: [element.encode() for element in item[0]])
    return found


def header_of(torrent: Torrent) -> fmt.BundleHeader:
    """The bundle header of ``torrent``; BundleError when it is not a bundle."""
    info = bencode.decode(torrent.info)
    assert isinstance(info, dict)  # Torrent.decode checked it
    header = fmt.read_header(info)
    if header is None:
        raise fmt.BundleError(f"{torrent.name}: not a bitswarm bundle")
    return header


def manifest_of(torrent: Torrent, content_key: bytes) -> fmt.Manifest:
    """The manifest, checked against the torrent's files; BundleError if anything differs."""
    manifest = fmt.open_manifest(header_of(torrent), content_key)
    fmt.check_sizes(manifest, [entry.length for entry in torrent.data_files()])
    return manifest


def open_bundle(torrent: Torrent, content_dir: Path, content_key: bytes, out: Path) -> list[Path]:
    """Decrypt every file of the bundle whose sealed files are under ``content_dir`` (the
    folder holding the torrent's top folder) into ``out``; the plaintext paths written.
    Raises BundleError at the first fault, with no plaintext left under a final name."""
    header = header_of(torrent)
    manifest = manifest_of(torrent, content_key)
    written = []
    for index, (entry, item) in enumerate(zip(torrent.data_files(), manifest.files, strict=True)):
        sealed = paths.resolve_inside(content_dir, entry.path)
        target = paths.resolve_inside(out, item.path)
        sealer = fmt.FileSealer(fmt.file_key(content_key, header.bundle_id, index), item.size)
        _open_file(sealer, sealed, target)
        written.append(target)
    return written


def _open_file(sealer: fmt.FileSealer, sealed: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        with sealed.open("rb") as reader, partial.open("wb") as writer:
            if os.fstat(reader.fileno()).st_size != sealer.sealed_size:
                raise fmt.BundleError(f"{sealed.name}: not the size the manifest gives")
            for index in range(sealer.segments):
                writer.write(sealer.open(index, reader.read(sealer.plain_length(index) + fmt.TAG_BYTES)))
        os.replace(partial, target)
    except OSError as error:
        raise BitswarmError(f"{error.filename or sealed}: {error.strerror or error}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
