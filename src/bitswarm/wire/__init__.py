"""The peer wire protocol: message codec and connection core."""
