"""Tests for HA Ingestor."""
