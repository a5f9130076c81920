"""How work runs on the machine: worker processes (parallel), threads on a shared CPU and the
C allocator's settings for the block loop."""
