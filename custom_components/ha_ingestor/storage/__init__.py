"""Where points wait on disk: the SQLite spool, and how SQLite files are opened.

`sqlite` opens, migrates and closes a file off the event loop, for the spool and the
registry mirror alike; `spool` is the durable queue of points not yet written, with
the quarantine of the points InfluxDB refused.
"""
