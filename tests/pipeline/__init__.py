"""Tests of the pipeline: the path of a state change to InfluxDB or the spool."""
