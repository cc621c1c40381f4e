"""Process entrypoints: the CPU worker and the GPU worker, each on its own task queue."""
