"""The stretch itself: the analysis pass and plan, the model's part of each block, phase and
synthesis per block, the offline Stretcher, the real-time stream, and the classical stretchers
(teachers and baselines)."""
