"""End-to-end tests: a person's path through Home Assistant's UI, in a real browser."""
