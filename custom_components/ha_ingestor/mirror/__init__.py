"""The registries mirrored into an SQLite file that other programs read.

`mirror` is the lifecycle (follow the registries, write, retry, repair issue);
`tables` defines the tables once and opens a file; `rows` turns registry entries into
rows; `file` writes them; `path_check` says whether a path the user typed may hold it.
"""
