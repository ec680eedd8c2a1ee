"""Process tests of the weights fetcher against a local Hub."""
