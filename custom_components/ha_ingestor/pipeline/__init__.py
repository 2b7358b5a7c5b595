"""The path of a state change, from Home Assistant's event bus to InfluxDB or the spool.

`listener` is the hot path (with `filters` and `last_states`); `batcher` collects
lines and hands batches to `writer`, or to the spool while InfluxDB cannot be written,
with `health` saying whether writes work; `stats` is every figure the stages count;
`handover` keeps the state changes fired while a pipeline starts or stops; `pipeline`
builds, starts and stops the stages of one config entry.
"""
