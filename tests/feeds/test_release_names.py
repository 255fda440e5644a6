"""The release-name corpus (release_names.tsv): real-world shapes of TV, anime, daily,
pack, proper and film names, each with what a subscription must read from it: the series
(as a user would write it in --series), the episode keys, the resolution, whether it is a
proper or repack, and its kind. Films must name no episode."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bitswarm.feeds.matching import episode_keys, series_of
from bitswarm.feeds.quality import Quality
from bitswarm.feeds.rules import Subscription, compile_rules
from bitswarm.releases import parse_release

CORPUS = Path(__file__).with_name("release_names.tsv")
KINDS = {"episode", "pack", "daily", "absolute", "movie"}


def corpus() -> list[dict[str, str]]:
    with CORPUS.open(newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def test_the_corpus_holds_at_least_200_names_of_every_kind() -> None:
    rows = corpus()
    assert len(rows) >= 200
    assert {row["kind"] for row in rows} == KINDS
    assert len({row["name"] for row in rows}) == len(rows), "no name twice"


@pytest.mark.parametrize("row", corpus(), ids=lambda row: row["name"])
def test_a_release_name_reads_as_written_down(row: dict[str, str]) -> None:
    release = parse_release(row["name"])
    keys, is_pack = episode_keys(release)
    expected_keys = tuple(row["episodes"].split(",")) if row["episodes"] else ()
    rules = compile_rules(Subscription(id=1, url="http://127.0.0.1/rss", series=(row["title"],)))
    assert series_of(rules, release) == row["title"]
    assert keys == expected_keys
    assert is_pack == (row["kind"] == "pack")
    assert (release.resolution or "") == row["resolution"]
    assert (release.is_proper or release.is_repack) == (row["proper"] == "proper")
    if row["resolution"]:
        assert Quality.of(release).resolution_rank > 0
