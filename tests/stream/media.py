"""Small media files for the player tests, made by Debian's ffmpeg, and what ffprobe and
ffmpeg read back from a file or a URL.

- ``make_mp4``: H.264/AAC in MP4 with the ``moov`` box at the end (no ``+faststart``), as
  most downloaded films are: a player must read the file's tail before it can play
  the head, so a streaming server has to fetch both first.
- ``make_webm``: VP9/Opus in WebM, which every browser plays.
- ``write_srt``: a SubRip file with a few cues.

The picture is ffmpeg's ``testsrc2`` (a moving pattern with a clock) and the sound a sine
tone, so the files are made in about a second each and every frame differs from the next.
A keyframe every two seconds keeps a seek near its target. A missing tool fails the test
(``pytest.fail``), never skips it; a tool that fails raises ``MediaToolFailed``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

# Where each tool comes from, for the message when it is missing.
DEBIAN_PACKAGES = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "mpv": "mpv", "chromium": "chromium"}
TOOL_TIMEOUT_S = 60.0
FRAME_RATE = 25
KEYFRAME_INTERVAL_FRAMES = 2 * FRAME_RATE
SUBTITLE_CUES = (
    (0.5, 4.0, "Hello from bitswarm"),
    (5.0, 9.0, "Streamed while it downloads"),
    (14.0, 19.5, "Three quarters in"),  # on screen after a seek to 75 % of 20 s
)


class MediaToolFailed(Exception):
    """ffmpeg or ffprobe exited non-zero or timed out; carries the command line and stderr."""

    def __init__(self, argv: Sequence[str], reason: str, stderr: str = "") -> None:
        detail = f"\nstderr:\n{stderr.rstrip()[-2000:]}" if stderr.strip() else ""
        super().__init__(f"{' '.join(argv)}: {reason}{detail}")


def require(tool: str) -> str:
    """The absolute path of ``tool``; fails the calling test (never skips it) when it is missing."""
    found = shutil.which(tool)
    if found is None:
        package = DEBIAN_PACKAGES.get(tool, "?")
        pytest.fail(f"{tool} is not installed (Debian package: {package}); the player tests need it", pytrace=False)
    return os.path.abspath(found)


def run_tool(argv: Sequence[str], *, timeout_s: float = TOOL_TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
    """Run argv (no shell, no stdin) and return it finished; raises MediaToolFailed if it fails."""
    try:
        done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        raise MediaToolFailed(argv, f"timed out after {timeout_s} s", stderr) from exc
    if done.returncode != 0:
        raise MediaToolFailed(argv, f"exit status {done.returncode}", done.stderr.decode("utf-8", "replace"))
    return done


def _sources(seconds: float, size: str) -> list[str]:
    return [
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FRAME_RATE}:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
    ]  # fmt: skip


def make_mp4(path: Path, *, seconds: float = 20.0, size: str = "640x360", video_bitrate: str = "1M") -> Path:
    """An H.264/AAC MP4 of ``seconds`` at about ``video_bitrate``, its ``moov`` box last.

    Raises MediaToolFailed when ffmpeg fails, and AssertionError if the boxes are not in
    that order (a newer ffmpeg that moved them would make the tests easier than meant).
    """
    argv = [
        require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", *_sources(seconds, size),
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(KEYFRAME_INTERVAL_FRAMES),
        "-b:v", video_bitrate, "-maxrate", video_bitrate, "-bufsize", "2M",
        "-c:a", "aac", "-b:a", "96k", "-shortest", str(path),
    ]  # fmt: skip
    run_tool(argv)
    boxes = top_level_boxes(path)
    assert "moov" in boxes, boxes
    assert "mdat" in boxes, boxes
    assert boxes.index("moov") > boxes.index("mdat"), boxes
    return path


def make_webm(path: Path, *, seconds: float = 20.0, size: str = "640x360", video_bitrate: str = "600k") -> Path:
    """A VP9/Opus WebM of ``seconds`` at about ``video_bitrate``; raises MediaToolFailed."""
    argv = [
        require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", *_sources(seconds, size),
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
        "-g", str(KEYFRAME_INTERVAL_FRAMES), "-b:v", video_bitrate,
        "-c:a", "libopus", "-b:a", "64k", "-shortest", str(path),
    ]  # fmt: skip
    run_tool(argv)
    return path


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02}:{minutes:02}:{whole:02},{millis:03}"


def write_srt(path: Path, cues: Sequence[tuple[float, float, str]] = SUBTITLE_CUES) -> Path:
    """A SubRip file of ``cues`` (start s, end s, text)."""
    blocks = [f"{n}\n{_srt_time(start)} --> {_srt_time(end)}\n{text}\n" for n, (start, end, text) in enumerate(cues, 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def top_level_boxes(path: Path) -> list[str]:
    """The types of an ISO BMFF file's top-level boxes, in file order (ISO/IEC 14496-12 4.2)."""
    boxes: list[str] = []
    size_total = path.stat().st_size
    with path.open("rb") as file:
        offset = 0
        while offset + 8 <= size_total:
            file.seek(offset)
            header = file.read(16)
            size, kind = int.from_bytes(header[:4], "big"), header[4:8].decode("latin-1")
            if size == 1:  # a 64-bit size follows the type
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:  # the box runs to the end of the file
                size = size_total - offset
            if size < 8:
                raise ValueError(f"{path}: box {kind!r} at {offset} has size {size}")
            boxes.append(kind)
            offset += size
    return boxes


@dataclass(frozen=True, slots=True)
class Probe:
    """What ffprobe reads from a file or URL: the container, its duration, and the codec
    and (for video) size of each stream, in order."""

    format_name: str
    duration_s: float
    codecs: tuple[str, ...]
    video_size: tuple[int, int] | None


def probe(source: str | Path, *, timeout_s: float = TOOL_TIMEOUT_S) -> Probe:
    """ffprobe's view of ``source`` (a path or an http URL); raises MediaToolFailed."""
    argv = [
        require("ffprobe"), "-v", "error", "-of", "json",
        "-show_entries", "format=format_name,duration:stream=codec_type,codec_name,width,height", str(source),
    ]  # fmt: skip
    facts = json.loads(run_tool(argv, timeout_s=timeout_s).stdout)
    streams = facts.get("streams", [])
    video = next((stream for stream in streams if stream.get("codec_type") == "video"), None)
    return Probe(
        format_name=facts["format"]["format_name"],
        duration_s=float(facts["format"]["duration"]),
        codecs=tuple(stream["codec_name"] for stream in streams),
        video_size=(int(video["width"]), int(video["height"])) if video is not None else None,
    )


def frame_png(source: str | Path, at_s: float, out: Path, *, timeout_s: float = TOOL_TIMEOUT_S) -> bytes:
    """Decode the video frame at ``at_s`` (ffmpeg's input seek: the demuxer seeks, then
    decodes from the keyframe before) into ``out`` as PNG and return its bytes.

    The same frame of the same file gives the same bytes, wherever the file is read from.
    Raises MediaToolFailed.
    """
    argv = [
        require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-ss", f"{at_s:.3f}", "-i", str(source), "-frames:v", "1", "-f", "image2", str(out),
    ]  # fmt: skip
    run_tool(argv, timeout_s=timeout_s)
    return out.read_bytes()
