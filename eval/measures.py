"""The measures of eval/benchmark.py's results.csv, each defined once: which way is better, and how
the reports title, explain and format it (eval/benchmark.py's table.md, eval/report.py's pages,
the paired tables of eval/study.py, eval/seeds.py, eval/realtime.py and eval/recorded_study.py)."""

from __future__ import annotations

from typing import NamedTuple


class Measure(NamedTuple):
    better: str  # "lower", "higher", "closer to 0" or "closer to 0.5": the direction of improvement
    title: str  # a page's heading (eval/report.py)
    how: str  # how to read it, beside the title (eval/report.py)
    note: str  # units and how to read it, under a benchmark table (eval/benchmark.py's table.md)
    fmt: str = "{:.2f}"  # one value in a page
    short: str = ""  # a short heading (eval/realtime.py)

    @property
    def target(self) -> float | None:
        """The right value of a "closer to" measure (None: lower or higher is better)."""
        return float(self.better.split()[-1]) if self.better.startswith("closer to") else None


MEASURES: dict[str, Measure] = {
    "logmel_db": Measure(
        "lower", "log-mel distance, dB", "lower is better", "dB, lower is better", "{:.2f}", "log-mel (dB)"
    ),
    "visqol": Measure(
        "higher",
        "ViSQOL MOS-LQO",
        "higher is better; the truth scores 4.73",
        "MOS-LQO 1-5, higher is better; the truth scores 4.73",
        "{:.3f}",
        "ViSQOL",
    ),
    "attack_db": Measure(
        "closer to 0",
        "attack at note onsets, dB",
        "0 is right, negative = weaker",
        "dB, 0 is right, negative = weaker attacks",
        "{:+.2f}",
        "attack (dB)",
    ),
    "smear_db": Measure(
        "closer to 0",
        "energy before onsets, dB",
        "0 is right, positive = smeared",
        "dB, 0 is right, positive = energy smeared before onsets",
        "{:+.2f}",
        "smear (dB)",
    ),
    "attack_high_db": Measure(
        "closer to 0",
        "attack above 11 kHz at drum hits (44.1 kHz sets), dB",
        "0 is right, negative = weaker",
        "dB above 11 kHz at drum hits (44.1 kHz sets), 0 is right, negative = weaker",
        "{:+.2f}",
    ),
    "smear_high_db": Measure(
        "closer to 0",
        "energy before drum hits above 11 kHz (44.1 kHz sets), dB",
        "0 is right, positive = smeared",
        "dB above 11 kHz at drum hits (44.1 kHz sets), 0 is right, positive = smeared",
        "{:+.2f}",
    ),
    "oversmoothing_db": Measure(
        "closer to 0",
        "over-smoothing, dB",
        "0 is right, negative = over-smoothed",
        "dB, 0 is right, negative = over-smoothed",
        "{:+.2f}",
        "over-smoothing (dB)",
    ),
    "two_sample_accuracy": Measure(
        "closer to 0.5",
        "two-sample classifier accuracy",
        "0.5 = indistinguishable from the truth",
        "held-out accuracy of a fresh classifier, 0.5 = indistinguishable from the truth",
        "{:.2f}",
    ),
    "spectral_convergence": Measure("lower", "spectral convergence", "lower is better", "lower is better"),
    "mrstft": Measure("lower", "multi-resolution STFT loss", "lower is better", "lower is better"),
    "duration_error_ms": Measure("closer to 0", "duration error, ms", "0 is right", "0 is right"),
    "pitch_cents": Measure("closer to 0", "pitch shift, cents", "0 is right", "0 is right"),
    "realtime_factor": Measure("higher", "real-time factor", "higher is faster", "higher is faster"),
    # eval/benchmark.py --recordings (no truth): per recording
    "naturalness": Measure(
        "closer to 0.5",
        "two-sample accuracy against the recording at its own tempo",
        "0.5 = indistinguishable",
        "two-sample accuracy against unstretched excerpts; 0.5: indistinguishable",
        "{:.3f}",
    ),
    "round_trip_db": Measure(
        "lower",
        "log-mel dB of r then 1/r against the input",
        "lower is better",
        "log-mel dB from the excerpt after r then 1/r; 0 for a perfect stretcher",
        "{:.2f}",
    ),
}
# the measures the paired studies compare (eval/study.py), in the order of their pages
COMPARED = (
    "logmel_db",
    "visqol",
    "attack_db",
    "smear_db",
    "attack_high_db",
    "smear_high_db",
    "oversmoothing_db",
    "two_sample_accuracy",
)
BETTER = {name: m.better for name, m in MEASURES.items()}  # name -> its direction of improvement
