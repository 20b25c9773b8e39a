"""Stand-alone HTTP servers the integration tests run as processes."""
