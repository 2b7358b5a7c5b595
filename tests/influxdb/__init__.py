"""Tests of influxdb/, one module per module: client, v1, v2, v3, connection."""
