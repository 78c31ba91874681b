"""Executors: the numpy reference interpreter, and (with the backend) the emulator and CuPy runtimes."""
