"""scripts/bench: HA Ingestor against Home Assistant's built-in influxdb integration.

The parent process (`python -m scripts.bench_ha`, see __main__.py) runs a local InfluxDB
1.x and, one after the other, fresh Home Assistant processes (child.py), one per mode and
repeat; it then writes docs/performance.md and its chart. The modes:

    a  Home Assistant alone
    b  Home Assistant + its built-in influxdb integration (YAML import, default settings)
    c  Home Assistant + HA Ingestor, preset core_compatible
    d  Home Assistant + HA Ingestor, preset rich
"""
