"""Developer entry points behind the Makefile targets."""
