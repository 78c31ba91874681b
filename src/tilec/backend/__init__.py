"""The CUDA backend: lowering tile IR to kernels, the C-style emitter, the emulator, and build folders."""
