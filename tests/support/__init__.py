"""What the tests use that is not a test: the live server, the soak driver, assertions."""
