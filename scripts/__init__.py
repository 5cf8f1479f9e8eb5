"""Developer scripts: real test servers and the demo."""
