"""Diagnostics that exercise the library on the hardware at hand, apart from the training engine: the GPU check."""
