"""Newznab category numbers, and the map between them and the site's own categories.

Torznab clients (Sonarr, Radarr, Prowlarr, Lidarr, Readarr) speak in Newznab numbers:
a parent per thousand (2000 Movies, 5000 TV, ...) and subcategories beneath it (5040
TV/HD). The numbers and names below are the standard list as Prowlarr's
``NewznabStandardCategory`` and Jackett's ``TorznabCatType`` carry it (7000 is Books and
8000 Other in both today).

The site names its categories with slugs ("tv", "tv/hd", "books/ebook"). ``CategoryMap``
turns a slug into the numbers an item is listed under and a request's numbers into the
slugs a search selects: ``cat=5000`` selects "tv" and every "tv/..." the site has,
``cat=5040`` selects "tv/hd", or "tv" itself when the site has no such subcategory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class NewznabCategory:
    """A Newznab category: its number and its standard name ("TV/HD")."""

    id: int
    name: str

    @property
    def parent_id(self) -> int:
        """The parent's number (5000 for 5040; a parent is its own)."""
        return self.id // 1000 * 1000

    @property
    def is_parent(self) -> bool:
        return self.id % 1000 == 0


STANDARD_CATEGORIES: Mapping[int, str] = MappingProxyType({
    1000: "Console", 1010: "Console/NDS", 1020: "Console/PSP", 1030: "Console/Wii", 1040: "Console/XBox",
    1050: "Console/XBox 360", 1060: "Console/Wiiware", 1070: "Console/XBox 360 DLC", 1080: "Console/PS3",
    1090: "Console/Other", 1110: "Console/3DS", 1120: "Console/PS Vita", 1130: "Console/WiiU",
    1140: "Console/XBox One", 1180: "Console/PS4",
    2000: "Movies", 2010: "Movies/Foreign", 2020: "Movies/Other", 2030: "Movies/SD", 2040: "Movies/HD",
    2045: "Movies/UHD", 2050: "Movies/BluRay", 2060: "Movies/3D", 2070: "Movies/DVD", 2080: "Movies/WEB-DL",
    3000: "Audio", 3010: "Audio/MP3", 3020: "Audio/Video", 3030: "Audio/Audiobook", 3040: "Audio/Lossless",
    3050: "Audio/Other", 3060: "Audio/Foreign",
    4000: "PC", 4010: "PC/0day", 4020: "PC/ISO", 4030: "PC/Mac", 4040: "PC/Mobile-Other", 4050: "PC/Games",
    4060: "PC/Mobile-iOS", 4070: "PC/Mobile-Android",
    5000: "TV", 5010: "TV/WEB-DL", 5020: "TV/Foreign", 5030: "TV/SD", 5040: "TV/HD", 5045: "TV/UHD",
    5050: "TV/Other", 5060: "TV/Sport", 5070: "TV/Anime", 5080: "TV/Documentary",
    6000: "XXX", 6010: "XXX/DVD", 6020: "XXX/WMV", 6030: "XXX/XviD", 6040: "XXX/x264", 6045: "XXX/UHD",
    6050: "XXX/Pack", 6060: "XXX/ImageSet", 6070: "XXX/Other", 6080: "XXX/SD", 6090: "XXX/WEB-DL",
    7000: "Books", 7010: "Books/Mags", 7020: "Books/EBook", 7030: "Books/Comics", 7040: "Books/Technical",
    7050: "Books/Other", 7060: "Books/Foreign",
    8000: "Other", 8010: "Other/Misc", 8020: "Other/Hashed",
})  # fmt: skip

OTHER = 8000

# The site's usual slugs and their numbers. An operator with other slugs passes their own.
DEFAULT_SLUG_NUMBERS: Mapping[str, int] = MappingProxyType({
    "movies": 2000, "movies/foreign": 2010, "movies/other": 2020, "movies/sd": 2030, "movies/hd": 2040,
    "movies/uhd": 2045, "movies/bluray": 2050, "movies/3d": 2060, "movies/dvd": 2070, "movies/web-dl": 2080,
    "music": 3000, "music/mp3": 3010, "music/video": 3020, "music/audiobook": 3030, "audiobooks": 3030,
    "music/lossless": 3040, "music/other": 3050, "music/foreign": 3060,
    "software": 4000, "software/0day": 4010, "software/iso": 4020, "software/mac": 4030,
    "software/mobile": 4040, "software/ios": 4060, "software/android": 4070,
    "games": 4050, "games/pc": 4050, "games/console": 1000,
    "tv": 5000, "tv/web-dl": 5010, "tv/foreign": 5020, "tv/sd": 5030, "tv/hd": 5040, "tv/uhd": 5045,
    "tv/other": 5050, "tv/sport": 5060, "tv/anime": 5070, "anime": 5070, "tv/documentary": 5080,
    "xxx": 6000,
    "books": 7000, "books/mags": 7010, "books/ebook": 7020, "books/comics": 7030, "books/technical": 7040,
    "books/other": 7050, "books/foreign": 7060,
    "other": 8000, "other/misc": 8010,
})  # fmt: skip


def standard_category(number: int) -> NewznabCategory | None:
    """The standard category with this number, or None for one the list does not have."""
    name = STANDARD_CATEGORIES.get(number)
    return None if name is None else NewznabCategory(number, name)


class CategoryMap:
    """The site's category slugs on one side, Newznab numbers on the other.

    ``site_categories`` are the slugs the site uses (from its configuration); a slug the
    ``slug_numbers`` table does not name falls back to the number of its first part ("tv"
    for "tv/x265") and then to 8000 Other, so every entry is listed somewhere."""

    def __init__(self, site_categories: Iterable[str], slug_numbers: Mapping[str, int] = DEFAULT_SLUG_NUMBERS) -> None:
        self._slug_numbers = dict(slug_numbers)
        self._site: dict[str, int] = {slug: self._number(slug) for slug in dict.fromkeys(site_categories)}

    @classmethod
    def default(cls) -> CategoryMap:
        """A map for a site using exactly the default slugs."""
        return cls(DEFAULT_SLUG_NUMBERS)

    @property
    def site_categories(self) -> tuple[str, ...]:
        return tuple(self._site)

    def _number(self, slug: str) -> int:
        number = self._slug_numbers.get(slug)
        if number is None:
            number = self._slug_numbers.get(slug.split("/", 1)[0], OTHER)
        # A number outside the standard list would be offered to clients that cannot name it.
        return number if number in STANDARD_CATEGORIES else OTHER

    def numbers_for(self, slug: str | None) -> tuple[int, ...]:
        """The numbers an entry of category ``slug`` is listed under: its own number and,
        for a subcategory, its parent's too (5040 then 5000), so that a client filtering
        on either finds it. No category is 8000 Other."""
        number = OTHER if slug is None else self._site.get(slug) or self._number(slug)
        parent = number // 1000 * 1000
        return (number,) if number == parent else (number, parent)

    def slugs_for(self, numbers: Iterable[int]) -> tuple[str, ...]:
        """The site's slugs that a request for these numbers selects, in the site's order.

        A parent number selects every slug under it; a subcategory number selects the
        slugs mapped to it, or the slugs of its parent when the site has none of the
        subcategory. Numbers the site has nothing for select nothing (an empty tuple is a
        search that matches nothing, not one that matches everything)."""
        wanted: set[int] = set()
        for number in numbers:
            if number % 1000 == 0:
                wanted |= {n for n in self._site.values() if n // 1000 * 1000 == number}
            elif number in self._site.values():
                wanted.add(number)
            elif number // 1000 * 1000 in self._site.values():
                wanted.add(number // 1000 * 1000)
        return tuple(slug for slug, number in self._site.items() if number in wanted)

    def caps_tree(self) -> list[tuple[NewznabCategory, list[NewznabCategory]]]:
        """The categories a caps answer lists: each parent the site has something under,
        with the subcategories the site has, in number order."""
        tree: dict[int, set[int]] = {}
        for number in self._site.values():
            children = tree.setdefault(number // 1000 * 1000, set())
            if number % 1000:
                children.add(number)
        return [
            (NewznabCategory(parent, STANDARD_CATEGORIES[parent]),
             [NewznabCategory(child, STANDARD_CATEGORIES[child]) for child in sorted(children)])
            for parent, children in sorted(tree.items())
        ]  # fmt: skip
