"""Tests of mirror/: lifecycle, file, path check, schema and rows."""
