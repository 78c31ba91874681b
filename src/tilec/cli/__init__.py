"""The ``tilec`` command line."""
