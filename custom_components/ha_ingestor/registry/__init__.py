"""What Home Assistant's registries say about entities, followed as they change.

`events` is the one subscription to the entity, device, area, floor and label
registries; `cache` keeps each entity's metadata for the hot path.
"""
