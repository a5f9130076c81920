"""Audio files and streams (read in blocks, written atomically), WAV pipes, containers and
safetensors checkpoints with atomic writes."""
