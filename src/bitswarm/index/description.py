"""An entry's description: Markdown from the uploader, shown as sanitised HTML.

The Markdown library never passes raw HTML through (``html`` off), and its output goes
through a real sanitiser as well, so a description is text and links, never a script, a
style or a form (THREATS: a page visitor must not run an uploader's code).
"""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt

from bitswarm.index.entries import MAX_DESCRIPTION_CHARS

# What a description may use: CommonMark's own output, images excepted (a remote image
# tells another site who reads the page).
ALLOWED_TAGS = frozenset(
    {"p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a",
     "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "del"}
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = frozenset({"http", "https", "magnet"})

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


# An entry page renders its description on every visit: the popular ones are kept (the
# function is pure; at most this many sources of up to MAX_DESCRIPTION_CHARS each).
RENDERED_KEPT = 256


@functools.lru_cache(maxsize=RENDERED_KEPT)
def render_description(source: str) -> str:
    """Safe HTML for ``source`` (Markdown); text beyond ``MAX_DESCRIPTION_CHARS`` is cut."""
    html = _markdown.render(source[:MAX_DESCRIPTION_CHARS])
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="nofollow noopener noreferrer ugc",
    )
