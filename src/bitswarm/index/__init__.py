"""The website: database, search, feeds (RSS, Torznab), routes and templates."""
