"""The `deltasync` command line."""
