"""Bencode speed: bitswarm's decoder and encoder against the PyPI candidates, in one run.

    python3 bench/bencode_bench.py            (pip install fastbencode to include it)

bitswarm decodes with its own strict decoder (byte offsets in errors, spans of top-level
values for the info-hash, a tolerant mode for files, 64-bit and depth limits) and
encodes with bencode2. This measures what that choice costs on a DHT-sized message and
on a 2,000-file torrent.
"""

from __future__ import annotations

import datetime
import importlib
import random
import sys
import timeit
from collections.abc import Callable

import bencode2

from bitswarm import bencode


def samples() -> dict[str, bytes]:
    rng = random.Random(1)
    dht_reply = {
        b"t": b"aa",
        b"y": b"r",
        b"r": {
            b"id": rng.randbytes(20),
            b"nodes": rng.randbytes(26 * 8),
            b"token": rng.randbytes(8),
            b"values": [rng.randbytes(6) for _ in range(8)],
        },
    }
    torrent = {
        b"announce": b"http://tracker.example/announce",
        b"info": {
            b"files": [{b"length": n * 1000, b"path": [b"folder", b"file%d.bin" % n]} for n in range(2000)],
            b"name": b"example",
            b"piece length": 262144,
            b"pieces": rng.randbytes(20 * 4096),
        },
    }
    return {"dht reply (300 B)": bencode2.bencode(dht_reply), "torrent, 2000 files (150 KB)": bencode2.bencode(torrent)}


def best_time(function: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number


def main() -> None:
    print(f"# {datetime.date.today()}  {' '.join(sys.argv)}  (python {sys.version.split()[0]})")
    candidates: dict[str, tuple[Callable[[bytes], object], Callable[[object], bytes]]] = {
        "bitswarm": (bencode.decode, bencode.encode),
        "bencode2": (bencode2.bdecode, bencode2.bencode),
    }
    try:
        fastbencode = importlib.import_module("fastbencode")
        candidates["fastbencode"] = (fastbencode.bdecode, fastbencode.bencode)
    except ImportError:
        print("(fastbencode not installed: pip install fastbencode to compare it)")
    print(f"{'input':32} {'library':12} {'decode us':>10} {'encode us':>10} {'decode vs bitswarm':>19}")
    for label, data in samples().items():
        value = bencode.decode(data)
        number = 20_000 if len(data) < 1000 else 50
        ours = best_time(lambda data=data: bencode.decode(data), number)  # type: ignore[misc]
        for name, (decode, encode) in candidates.items():
            assert decode(data) == value, name
            decode_s = best_time(lambda decode=decode, data=data: decode(data), number)  # type: ignore[misc]
            encode_s = best_time(lambda encode=encode, value=value: encode(value), number)  # type: ignore[misc]
            print(f"{label:32} {name:12} {decode_s * 1e6:10.1f} {encode_s * 1e6:10.1f} {ours / decode_s:18.1f}x")


if __name__ == "__main__":
    main()
