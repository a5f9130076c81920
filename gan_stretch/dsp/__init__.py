"""Signal processing: the STFT (spectrum), phase-vocoder phase, onset detection, time maps and
rates, frequency bands, decays, pitch shifting and resynthesis (overlap-add, Griffin-Lim).

Nothing here knows the model; the stretching package builds on these.
"""
