"""``bitswarm stream`` (the CLI, a subprocess) played by real players: ffprobe and ffmpeg,
mpv, and chromium driven by Playwright.

The media are made by Debian's ffmpeg at the start (``media.py``): a 20 s H.264/AAC MP4
whose ``moov`` box is at the end, a 20 s VP9/Opus WebM, and a SubRip file. The sources
of the pieces are real as well: libtorrent (Debian's python3-libtorrent, ``lt_driver.py
seed-here``, with its upload capped so the players start long before the download ends),
nginx as the only web seed, and a second ``bitswarm stream`` fed by the first. Peers are
named in magnet links (``x.pe``); there is no tracker, DHT or LSD.

Every process a test starts is ended in ``finally`` by its PID, with a bounded wait. A
missing tool (ffmpeg, ffprobe, mpv, chromium, nginx, libtorrent) fails the test. Pages
are screenshot into the test's folder, and into $BITSWARM_ARTEFACTS/<test> when set.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, TextIO

import pytest

from bitswarm.metainfo import Torrent
from interop.tools import lt_process
from webseed_nginx import nginx_binary, serve_with_nginx

from .media import SUBTITLE_CUES, frame_png, make_mp4, make_webm, probe, require, write_srt

pytestmark = [pytest.mark.interop, pytest.mark.stream]

BITSWARM = [sys.executable, "-m", "bitswarm"]
# Peers only from the magnet link's x.pe (or the torrent's web seed): no DHT, no LSD.
PEER_OPTIONS = ["--port", "0", "--no-dht", "--no-lsd"]
# One step (a process to start, a file to arrive, a player to finish) is bounded by this.
STEP_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 15.0
# libtorrent's upload cap: the 2.8 MB MP4 takes about 5 s to arrive, so the players read
# while it downloads.
SLOW_SEED_BYTES_PER_S = 512 * 1024
SEED_BYTES_PER_S = 1024 * 1024
CLIP_SECONDS = 20.0
SEEK_FRACTION = 0.75
PLAYED_S = 3  # mpv's --end
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Media:
    """The files the tests share: each single file in ``root``, and ``root/Clip`` with the
    MP4, the WebM and their subtitles for the torrents of a folder."""

    root: Path
    mp4: Path
    webm: Path
    folder: Path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("media")
    mp4 = make_mp4(root / "clip.mp4", seconds=CLIP_SECONDS)
    webm = make_webm(root / "clip.webm", seconds=CLIP_SECONDS)
    folder = root / "Clip"
    folder.mkdir()
    shutil.copyfile(mp4, folder / "clip.mp4")
    shutil.copyfile(webm, folder / "clip.webm")
    # "clip.en.srt" starts with the videos' stem "clip": the subtitles of both.
    write_srt(folder / "clip.en.srt")
    return Media(root, mp4, webm, folder)


@pytest.fixture
def artefacts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A folder for screenshots and frames; copied to $BITSWARM_ARTEFACTS/<test> at the end."""
    folder = tmp_path / "artefacts"
    folder.mkdir()
    yield folder
    target = os.environ.get("BITSWARM_ARTEFACTS")
    if target:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        shutil.copytree(folder, Path(target) / name, dirs_exist_ok=True)


# -- processes ---------------------------------------------------------------------------


def make_torrent(path: Path, out: Path, *web_seeds: str) -> tuple[str, Torrent]:
    """``bitswarm create PATH -o OUT --v1 --no-date [-w URL]...``: the magnet link it prints
    (its last line) and the torrent."""
    argv = [*BITSWARM, "create", str(path), "-o", str(out), "--v1", "--no-date"]
    for url in web_seeds:
        argv += ["-w", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip().splitlines()[-1]
    assert link.startswith("magnet:?xt=urn:btih:"), done.stdout
    return link, Torrent.decode(out.read_bytes())


def stop_process(
    process: subprocess.Popen[Any],
    *,
    graceful: Callable[[], None] | None = None,
    signum: signal.Signals = signal.SIGTERM,
) -> int:
    """End ``process`` (``graceful()``, else ``signum`` by its PID), wait at most
    STOP_TIMEOUT_S, then SIGKILL; its exit status (negative: the signal that ended it)."""
    if process.poll() is None:
        with contextlib.suppress(OSError):
            if graceful is not None:
                graceful()
            else:
                os.kill(process.pid, signum)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
    return process.returncode


@contextlib.contextmanager
def libtorrent_seed(torrent: Path, save_path: Path, *, max_up: int) -> Iterator[int]:
    """libtorrent seeding ``torrent`` from ``save_path`` at most ``max_up`` bytes/s, no
    tracker: the port peers dial. It is told to stop (a line on stdin) at the end."""
    seed = lt_process("seed-here", torrent, save_path, "--max-up", str(max_up), "--timeout", "300")
    try:
        assert seed.stdout is not None
        # The driver bounds its own wait for "seeding" (the check of every piece).
        seeding = json.loads(seed.stdout.readline() or "{}")
        assert seeding.get("stage") == "seeding", seed.stderr.read() if seed.stderr else ""
        yield int(seeding["listen_port"])
    finally:

        def say_stop() -> None:
            assert seed.stdin is not None
            seed.stdin.write("\n")
            seed.stdin.flush()

        stop_process(seed, graceful=say_stop)
        for pipe in (seed.stdin, seed.stdout, seed.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class Stream:
    """A running ``bitswarm stream --json``: its stdout read line by line by a thread."""

    process: subprocess.Popen[str]
    stderr_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    events: list[dict[str, Any]] = field(default_factory=list)
    not_json: list[str] = field(default_factory=list)

    def start_reading(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None

        def pump(pipe: TextIO) -> None:
            for line in pipe:
                self.lines.put(line)
            self.lines.put(None)  # end of output

        threading.Thread(target=pump, args=(stdout,), daemon=True).start()

    def wait_event(self, name: str, timeout_s: float = STEP_TIMEOUT_S) -> dict[str, Any]:
        """The first event ``name`` from now on; fails the test at the deadline or when the
        process ends first."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"bitswarm stream ended before {name!r}; stderr:\n{self.stderr()}")
            try:
                event: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                self.not_json.append(line)
                continue
            self.events.append(event)
            if event.get("event") == name:
                return event
        pytest.fail(f"bitswarm stream: no {name!r} event within {timeout_s} s; stderr:\n{self.stderr()}")

    def drain(self) -> None:
        """Read what is left of stdout (call once the process has ended)."""
        while True:
            try:
                line = self.lines.get(timeout=STOP_TIMEOUT_S)
            except queue.Empty:
                return
            if line is None:
                return
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.not_json.append(line)

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")[-3000:]


@dataclass(frozen=True, slots=True)
class Serving:
    """What a ``serving`` event says: the server's URL, each file's URL by path, the peer port."""

    url: str
    files: dict[str, str]
    indices: dict[str, int]
    peer_port: int
    stream: Stream

    @property
    def stats_url(self) -> str:
        return self.url + "stats.json"


def start_stream(source: str, log_folder: Path, *options: str, env: dict[str, str] | None = None) -> Stream:
    log_folder.mkdir(parents=True, exist_ok=True)
    stderr_path = log_folder / "stream.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [*BITSWARM, "stream", source, "--json", *PEER_OPTIONS, *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )  # fmt: skip
    stream = Stream(process, stderr_path)
    stream.start_reading()
    return stream


@contextlib.contextmanager
def streaming(
    source: str, log_folder: Path, *options: str, stop_signal: signal.Signals = signal.SIGTERM
) -> Iterator[Serving]:
    """``bitswarm stream SOURCE --json OPTIONS`` until the block ends; then ``stop_signal``
    (SIGTERM, or SIGINT as Ctrl-C sends), which must end it cleanly: exit status 0 after a
    ``stopped`` event (checked when the block itself passed)."""
    stream = start_stream(source, log_folder, *options)
    try:
        serving = stream.wait_event("serving")
        assert serving["url"].startswith("http://127.0.0.1:"), serving
        yield Serving(
            url=serving["url"],
            files={file["path"]: file["url"] for file in serving["files"]},
            indices={file["path"]: file["index"] for file in serving["files"]},
            peer_port=int(serving["port"]),
            stream=stream,
        )
    finally:
        status = stop_process(stream.process, signum=stop_signal)
        if stream.process.stdout is not None:
            stream.drain()
            stream.process.stdout.close()
    assert status == 0, f"bitswarm stream exited {status} on {stop_signal.name}; stderr:\n{stream.stderr()}"
    assert stream.events[-1].get("event") == "stopped", stream.events[-3:]


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - our own http://127.0.0.1 URLs
    with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as reply:  # noqa: S310
        return reply.status, reply.headers, reply.read()


def stats(serving: Serving) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads(http_get(serving.stats_url)[2])
    return facts


def with_peer(link: str, port: int) -> str:
    return f"{link}&x.pe=127.0.0.1:{port}"


# -- what every copy must show -----------------------------------------------------------


def check_probe_and_seek(url: str, original: Path, artefacts: Path) -> None:
    """ffprobe reads an MP4's container and duration from ``url``; ffmpeg seeks to 75 %
    and decodes there the frame it decodes from the original file."""
    probed = probe(url)
    assert "mp4" in probed.format_name.split(","), probed
    assert abs(probed.duration_s - CLIP_SECONDS) < 0.1, probed
    assert probed.codecs == ("h264", "aac"), probed
    assert probed.video_size == (640, 360), probed
    at_s = SEEK_FRACTION * probed.duration_s
    streamed = frame_png(url, at_s, artefacts / "frame-at-75-percent.png")
    expected = frame_png(original, at_s, artefacts / "frame-at-75-percent-from-the-file.png")
    assert streamed == expected, "the frame decoded from the stream differs from the file's"
    first = frame_png(original, 0.0, artefacts / "frame-at-0.png")
    assert streamed != first, "the seek did not move: the frame at 75 % is the first frame"


def check_whole_file(url: str, original: Path) -> None:
    """A plain GET of ``url`` answers 200 with every byte of ``original``, and a range
    request the bytes of that range."""
    expected = original.read_bytes()
    status, headers, body = http_get(url)
    assert status == 200
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"]
    assert int(headers["Content-Length"]) == len(expected)
    assert body == expected, "the served bytes differ from the file's"
    status, headers, body = http_get(url, {"Range": "bytes=-1000"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {len(expected) - 1000}-{len(expected) - 1}/{len(expected)}"
    assert body == expected[-1000:]


# -- the tests ---------------------------------------------------------------------------


def test_ffprobe_and_a_seeking_ffmpeg_read_an_mp4_from_a_libtorrent_seed_while_it_downloads(
    tmp_path: Path, media: Media, artefacts: Path
) -> None:
    link, torrent = make_torrent(media.mp4, tmp_path / "clip.torrent")
    with (
        libtorrent_seed(tmp_path / "clip.torrent", media.root, max_up=SLOW_SEED_BYTES_PER_S) as seed_port,
        streaming(with_peer(link, seed_port), tmp_path / "stream", "-o", str(tmp_path / "down")) as serving,
    ):
        url = serving.files["clip.mp4"]
        before = stats(serving)
        # The cap holds the download to about 5 s; ffprobe starts within milliseconds.
        assert before["pieces"] < torrent.num_pieces, "the download ended before the players started"
        check_probe_and_seek(url, media.mp4, artefacts)
        check_whole_file(url, media.mp4)
        playlist = http_get(serving.url + "playlist.m3u")[2].decode()
        assert playlist.splitlines() == ["#EXTM3U", "#EXTINF:-1,clip.mp4", url]
        after = stats(serving)
        assert after["pieces"] == after["num_pieces"] == torrent.num_pieces
        assert after["files"][0]["buffered"] == [[0, media.mp4.stat().st_size - 1]]
        assert after["downloaded"] >= media.mp4.stat().st_size
    assert (tmp_path / "down" / "clip.mp4").read_bytes() == media.mp4.read_bytes()


def test_a_player_command_plays_the_stream_and_stream_exits_when_it_does(tmp_path: Path, media: Media) -> None:
    """``--player CMD --no-seed``: CMD runs with the main file's URL appended; once it exits
    0, stream exits 0 by itself. mpv's log shows it opened that URL and played to the end
    it was given (``--end``), in real time (``--ao=null`` keeps the clock)."""
    mpv = require("mpv")
    link, _torrent = make_torrent(media.mp4, tmp_path / "clip.torrent")
    log = tmp_path / "mpv.log"
    player = shlex.join([
        mpv, "--no-config", "--vo=null", "--ao=null", f"--end={PLAYED_S}", f"--log-file={log}",
        "--term-status-msg=POSITION ${=time-pos}",
    ])  # fmt: skip
    with libtorrent_seed(tmp_path / "clip.torrent", media.root, max_up=SEED_BYTES_PER_S) as seed_port:
        stderr_path = tmp_path / "stream.stderr"
        with stderr_path.open("w") as stderr:
            stream = subprocess.Popen(
                [*BITSWARM, "stream", with_peer(link, seed_port), *PEER_OPTIONS, "--player", player, "--no-seed"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
        try:
            stdout, _ = stream.communicate(timeout=STEP_TIMEOUT_S)
        finally:
            stop_process(stream)
    stream_err = stderr_path.read_text("utf-8", "replace")
    assert stream.returncode == 0, stream_err[-3000:]
    first = stdout.splitlines()[0]
    served = re.fullmatch(r"bitswarm stream: (http://127\.0\.0\.1:\d+/)", first)
    assert served is not None, stdout[:500]
    mpv_log = log.read_text("utf-8", "replace")
    assert f"Opening done: {served[1]}files/0/clip.mp4" in mpv_log, mpv_log[-3000:]
    assert "finished playback, success" in mpv_log, mpv_log[-3000:]
    assert "Exiting... (End of file)" in mpv_log, mpv_log[-3000:]
    # The status line goes to the player's stderr, which is stream's.
    positions = [float(value) for value in re.findall(r"POSITION (\d+\.\d+)", stream_err)]
    assert positions, stream_err[-2000:]
    assert max(positions) >= PLAYED_S - 0.5, positions


def test_mpv_by_name_gets_the_subtitles_and_its_output_stays_off_the_json_lines(tmp_path: Path, media: Media) -> None:
    """``--player mpv`` runs mpv with ``--sub-file=`` for the subtitles beside the main file
    (the largest video); mpv's own settings come from MPV_HOME (no window, no sound, the
    first seconds only, a log). With ``--json`` every line on stdout is a JSON event: the
    player's chatter must not land among them."""
    require("mpv")
    link, torrent = make_torrent(media.folder, tmp_path / "Clip.torrent")
    names = [entry.path[-1] for entry in torrent.data_files()]
    mpv_home = tmp_path / "mpv-home"
    mpv_home.mkdir()
    log = tmp_path / "mpv.log"
    (mpv_home / "mpv.conf").write_text(f"vo=null\nao=null\nend={PLAYED_S}\nlog-file={log}\n")
    with libtorrent_seed(tmp_path / "Clip.torrent", media.root, max_up=SEED_BYTES_PER_S) as seed_port:
        env = {**os.environ, "MPV_HOME": str(mpv_home)}
        stream = start_stream(with_peer(link, seed_port), tmp_path / "stream", "--player", "mpv", "--no-seed", env=env)
        try:
            serving = stream.wait_event("serving")
            player = stream.wait_event("player")
            exited = stream.wait_event("player-exited")
            assert stream.process.wait(timeout=STOP_TIMEOUT_S) == 0, stream.stderr()
        finally:
            stop_process(stream.process)
            stream.drain()
            if stream.process.stdout is not None:
                stream.process.stdout.close()
    assert player["message"] == "mpv playing clip.mp4", player
    assert exited["code"] == 0
    assert stream.events[-1]["event"] == "stopped"
    base = serving["url"]
    mpv_log = log.read_text("utf-8", "replace")
    assert f"Opening done: {base}files/{names.index('clip.mp4')}/clip.mp4" in mpv_log, mpv_log[-3000:]
    subtitles = f"{names.index('clip.en.srt')}.vtt"
    assert f"Opening {base}subtitles/{subtitles}" in mpv_log, mpv_log[-3000:]
    assert re.search(rf"\(\+\) Subs +--sid=1 '{re.escape(subtitles)}' \(webvtt\) \(external\)", mpv_log), mpv_log
    assert "Exiting... (End of file)" in mpv_log, mpv_log[-3000:]
    assert stream.not_json == [], f"lines on stdout that are not JSON events: {stream.not_json[:5]}"


def test_a_failing_player_makes_stream_exit_non_zero(tmp_path: Path, media: Media) -> None:
    """The torrent's pieces are nowhere (no peer, no web seed): stream serves at once all
    the same, the player (``false``) exits 1, and stream ends with a failure."""
    _link, _torrent = make_torrent(media.mp4, tmp_path / "clip.torrent")
    false = shutil.which("false")
    assert false is not None
    stream = start_stream(str(tmp_path / "clip.torrent"), tmp_path / "stream", "--player", false, "--no-seed")
    try:
        stream.wait_event("serving")
        exited = stream.wait_event("player-exited")
        status = stream.process.wait(timeout=STOP_TIMEOUT_S)
    finally:
        stop_process(stream.process)
        stream.drain()
        if stream.process.stdout is not None:
            stream.process.stdout.close()
    assert exited["code"] == 1
    assert status != 0, "stream exited 0 although its player failed"


@pytest.mark.browser
def test_chromium_plays_a_webm_with_its_subtitles_and_plays_on_after_a_seek_to_three_quarters(
    tmp_path: Path, media: Media, artefacts: Path
) -> None:
    """The player page (``/play/N``) in chromium: the WebM starts by itself, plays past 1 s,
    plays on after a seek to 75 % (pieces the download had not reached), and shows the
    subtitles (``<track>`` from /subtitles/M.vtt, WebVTT made from the .srt)."""
    from playwright.sync_api import sync_playwright

    require("chromium")
    link, torrent = make_torrent(media.folder, tmp_path / "Clip.torrent")
    names = [entry.path[-1] for entry in torrent.data_files()]
    webm, srt = names.index("clip.webm"), names.index("clip.en.srt")
    failed_media: list[str] = []
    with (
        libtorrent_seed(tmp_path / "Clip.torrent", media.root, max_up=SEED_BYTES_PER_S) as seed_port,
        # --file N: the WebM is the only file fetched ahead; the subtitles come on demand.
        streaming(with_peer(link, seed_port), tmp_path / "stream", "--file", str(webm)) as serving,
        sync_playwright() as playwright,
    ):
        vtt = http_get(f"{serving.url}subtitles/{srt}.vtt")[2].decode()
        assert vtt.startswith("WEBVTT"), vtt[:200]
        assert all(text in vtt for _, _, text in SUBTITLE_CUES), vtt
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 700})

            def on_response(response: Any) -> None:
                if "/files/" in response.url and response.status not in (200, 206):
                    failed_media.append(f"{response.status} {response.url}")

            page.on("response", on_response)
            page.goto(serving.url)
            assert page.locator("h1").inner_text() == "Clip"
            assert page.locator(f'a[href="/play/{webm}"]').count() == 1
            assert page.locator("a", has_text="clip.en.srt").count() == 1
            page.screenshot(path=str(artefacts / "index.png"), full_page=True)

            page.goto(f"{serving.url}play/{webm}")
            track = page.locator("video#player track")
            assert track.count() == 1
            assert track.get_attribute("src") == f"/subtitles/{srt}.vtt"
            assert track.get_attribute("kind") == "subtitles"
            timeout_ms = STEP_TIMEOUT_S * 1000
            # Functions, not expressions: an expression would be eval()'d, which the page's CSP forbids.
            page.wait_for_function("() => document.getElementById('player').currentTime > 1", timeout=timeout_ms)
            duration = page.evaluate("() => document.getElementById('player').duration")
            assert abs(duration - CLIP_SECONDS) < 0.5, duration
            # The track's cues are the .srt's, read by the browser from the WebVTT.
            page.wait_for_function(
                "() => { const t = document.getElementById('player').textTracks[0];"
                " return t && t.mode === 'showing' && t.cues && t.cues.length === 3; }",
                timeout=timeout_ms,
            )
            cue_texts = page.evaluate(
                "() => Array.from(document.getElementById('player').textTracks[0].cues, c => c.text)"
            )
            assert cue_texts == [text for _, _, text in SUBTITLE_CUES]
            seek_s = SEEK_FRACTION * duration
            page.evaluate("seek => { document.getElementById('player').currentTime = seek; }", seek_s)
            page.wait_for_function(
                "seek => { const p = document.getElementById('player');"
                " return !p.seeking && p.currentTime > seek + 1; }",
                arg=seek_s,
                timeout=timeout_ms,
            )
            state = page.evaluate(
                "() => { const p = document.getElementById('player');"
                " return {error: p.error && p.error.code, paused: p.paused, ended: p.ended,"
                " time: p.currentTime, width: p.videoWidth,"
                " cue: p.textTracks[0].activeCues.length ? p.textTracks[0].activeCues[0].text : null}; }"
            )
            assert state["error"] is None, state
            assert not state["paused"], state
            assert not state["ended"], state
            assert state["cue"] == SUBTITLE_CUES[-1][2], state
            assert seek_s + 1 < state["time"] < CLIP_SECONDS, state
            assert state["width"] == 640, state
            page.screenshot(path=str(artefacts / "player.png"), full_page=True)
        finally:
            browser.close()
    assert failed_media == []


def test_a_torrent_whose_only_source_is_an_nginx_web_seed_streams(
    tmp_path: Path, media: Media, artefacts: Path
) -> None:
    """No peer at all: the torrent names nginx as its web seed (BEP 19), and every byte the
    players read comes from nginx in range requests. Ctrl-C (SIGINT) ends stream cleanly."""
    binary = nginx_binary()
    if binary is None:
        pytest.fail("nginx is not installed (Debian package: nginx-light)", pytrace=False)
    www = tmp_path / "www"
    www.mkdir()
    shutil.copyfile(media.mp4, www / "clip.mp4")
    with serve_with_nginx(www, tmp_path / "nginx", binary) as nginx:
        _link, _torrent = make_torrent(www / "clip.mp4", tmp_path / "clip.torrent", nginx.url)
        with streaming(str(tmp_path / "clip.torrent"), tmp_path / "stream", stop_signal=signal.SIGINT) as serving:
            url = serving.files["clip.mp4"]
            check_probe_and_seek(url, media.mp4, artefacts)
            check_whole_file(url, media.mp4)
            assert stats(serving)["peers"] == 0
        rows = nginx.requests()
    assert rows, "nginx saw no request"
    assert {request.split(" ")[1] for *_, request in rows} == {"/clip.mp4"}
    assert all(status in (200, 206) for _, _, status, _, _ in rows), rows
    assert sum(sent for _, _, _, sent, _ in rows) >= media.mp4.stat().st_size


def test_a_viewer_feeds_a_second_viewer_who_knows_only_of_it(tmp_path: Path, media: Media) -> None:
    """Viewer A streams from a slow libtorrent seed; viewer B is given only A (x.pe with
    the peer port of A's ``serving`` event, no PEX): B's metadata and every piece of B's
    come from A, while A is still downloading."""
    link, torrent = make_torrent(media.webm, tmp_path / "clip.torrent")
    size = media.webm.stat().st_size
    with (
        libtorrent_seed(tmp_path / "clip.torrent", media.root, max_up=SLOW_SEED_BYTES_PER_S) as seed_port,
        streaming(with_peer(link, seed_port), tmp_path / "a", "-o", str(tmp_path / "a-down")) as a,
    ):
        assert stats(a)["pieces"] < torrent.num_pieces, "A finished before B started"
        b_options = ("-o", str(tmp_path / "b-down"), "--no-pex")
        with streaming(with_peer(link, a.peer_port), tmp_path / "b", *b_options) as b:
            status, _headers, body = http_get(b.files["clip.webm"])
            assert status == 200
            assert body == media.webm.read_bytes(), "B served bytes that differ from the file's"
            b_stats = stats(b)
            assert b_stats["pieces"] == torrent.num_pieces
            assert b_stats["downloaded"] >= size
            a_stats = stats(a)
            assert a_stats["uploaded"] >= size, a_stats
    assert (tmp_path / "b-down" / "clip.webm").read_bytes() == media.webm.read_bytes()


def test_an_encrypted_bundle_streams_its_plaintext_from_a_libtorrent_seed_that_never_had_the_key(
    tmp_path: Path, media: Media, artefacts: Path
) -> None:
    """`bitswarm stream LINK#k=KEY`: the seed holds ciphertext only; the players get the
    plaintext, decrypted segment by segment from verified pieces while it downloads."""
    out = tmp_path / "sealed.torrent"
    argv = [*BITSWARM, "bundle", "create", str(media.mp4), "-o", str(out), "--data", str(tmp_path / "sealed"),
            "--title", "A clip, sealed"]  # fmt: skip
    made = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False)
    assert made.returncode == 0, made.stderr
    magnet_link, _, fragment = made.stdout.strip().partition("#")
    torrent = Torrent.decode(out.read_bytes())
    size = media.mp4.stat().st_size
    with (
        libtorrent_seed(out, tmp_path / "sealed", max_up=SLOW_SEED_BYTES_PER_S) as seed_port,
        streaming(
            f"{with_peer(magnet_link, seed_port)}#{fragment}", tmp_path / "stream", "-o", str(tmp_path / "down")
        ) as serving,  # fmt: skip
    ):
        url = serving.files["clip.mp4"]
        assert stats(serving)["pieces"] < torrent.num_pieces, "the download ended before the players started"
        check_probe_and_seek(url, media.mp4, artefacts)
        check_whole_file(url, media.mp4)
        assert "A clip, sealed" in http_get(serving.url)[2].decode()
        after = stats(serving)
        assert after["files"][0]["length"] == size
        assert after["files"][0]["buffered"] == [[0, size - 1]]
    sealed = (tmp_path / "down" / torrent.name / "0000.bin").read_bytes()
    assert media.mp4.read_bytes()[:4096] not in sealed  # only ciphertext reached the disk
