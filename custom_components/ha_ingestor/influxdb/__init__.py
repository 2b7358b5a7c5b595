"""InfluxDB's HTTP APIs over Home Assistant's shared aiohttp session.

`connection` turns a config entry's data into a client; `client` is what every API
version shares (requests, errors, gzip); `v1`, `v2` and `v3` are the versions' own
write endpoints, authentication and setup checks.
"""
