"""Subscriptions: RSS 2.0 and Atom feeds polled for new torrents, matched against rules,
each episode handed once to a sink (a watch folder, a Transmission-compatible daemon).

- ``document``: a feed's bytes to ``FeedItem`` values (feedparser, after the checks), sans-IO;
- ``quality``, ``rules`` and ``matching``: a subscription's rules and the decision core
  (items and the time in, ``Grab``/``Hold``/``Skip`` out), sans-IO;
- ``store``: the subscriptions file and the seen-database (SQLite) under a state folder;
- ``fetch``: bounded HTTP GETs (feeds with ``ETag``/``If-Modified-Since``, enclosures);
- ``sinks``: where a grabbed torrent goes;
- ``runner``: ``SubscriptionRunner.poll_once(now)``, what ``subscribe run`` and the daemon call.
"""
