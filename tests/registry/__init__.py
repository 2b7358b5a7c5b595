"""Tests of registry/: the one subscription to the registries, and the metadata cache."""
