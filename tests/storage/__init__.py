"""Tests of storage/: the shared SQLite opener and the spool."""
