"""What runs cost, said the way people read it: "CPU 1.84 s of 20 s (times) 1 CPU",
"peak 212 MiB of 512 MiB", "killed by signal 9 (SIGKILL)", "output 1.2 MiB, cut to
64 KiB". The figures are the evaluation_run columns and the limits the run ran under
(`limits`, see worker.sandbox.base.SandboxLimits.shown); None is "not measured".

The team's submission page, the admin batch page and the admin log page show the same
sentences: they all come from here.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Any, Protocol

from portal.core.templating import human_seconds

NOT_MEASURED = "not measured"
# The line kept_log (worker.sandbox.base) puts where it cut the middle out of a long log.
CUT_MARKER = re.compile(r"\[\.\.\. \d+ bytes of output omitted \.\.\.\]")
# How a failure's reason (worker/judge.py) quotes the log's last lines, for a reader
# without the log (the API, the dashboard's one line).
LOG_TAIL_INTRO = " Last log lines:\n"


class Costed(Protocol):
    """A run as the pages hold it (RunPublic and its kin)."""

    exit_code: int | None
    cpu_user_ms: int | None
    cpu_system_ms: int | None
    peak_memory_bytes: int | None
    exit_signal: int | None
    output_bytes: int | None
    output_truncated: bool | None
    limits: dict[str, Any]


def human_bytes(size: int) -> str:
    """1023 B, 64 KiB, 1.2 MiB, 212 MiB: one decimal only where it says something."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "B":
        return f"{size} B"
    text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return f"{text.removesuffix('.0')} {unit}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cpus(cpus: float) -> str:
    return f"{cpus:g} CPU" if cpus == 1 or cpus < 1 else f"{cpus:g} CPUs"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def ending(exit_code: int | None, exit_signal: int | None) -> str:
    if exit_signal is not None:
        return f"killed by signal {exit_signal} ({signal_name(exit_signal)})"
    if exit_code is not None:
        return f"exit code {exit_code}"
    return f"how it ended: {NOT_MEASURED}"


@dataclass(frozen=True)
class Gauge:
    """A figure against its limit: the sentence, and the share for a small bar."""

    text: str
    value: float | None = None  # None: no bar (not measured, or no limit known)
    limit: float | None = None

    @property
    def high(self) -> float | None:
        return None if self.limit is None else 0.9 * self.limit


@dataclass(frozen=True)
class CostShown:
    cpu: str
    cpu_detail: str  # user and system apart, for a tooltip
    memory: Gauge
    ending: str
    output: str


def describe(run: Costed) -> CostShown:
    limits = run.limits or {}
    timeout, cpus = _number(limits.get("timeout_seconds")), _number(limits.get("cpus"))
    if run.cpu_user_ms is None or run.cpu_system_ms is None:
        cpu, cpu_detail = f"CPU {NOT_MEASURED}", ""
    else:
        cpu = f"CPU {human_seconds(run.cpu_user_ms + run.cpu_system_ms)}"
        if timeout is not None and cpus is not None:
            cpu += f" of {timeout:g} s \N{MULTIPLICATION SIGN} {_cpus(cpus)}"
        cpu_detail = (
            f"user {human_seconds(run.cpu_user_ms)}, system {human_seconds(run.cpu_system_ms)}"
        )
    memory_mib = _number(limits.get("memory_mib"))
    memory = peak_gauge(run.peak_memory_bytes, memory_mib)
    return CostShown(
        cpu=cpu,
        cpu_detail=cpu_detail,
        memory=memory,
        ending=ending(run.exit_code, run.exit_signal),
        output=_output(
            run.output_bytes, run.output_truncated, _number(limits.get("log_cap_bytes"))
        ),
    )


def peak_gauge(peak_bytes: int | None, memory_mib: float | None, label: str = "peak") -> Gauge:
    if peak_bytes is None:
        return Gauge(f"{label} memory {NOT_MEASURED}")
    if memory_mib is None:
        return Gauge(f"{label} {human_bytes(peak_bytes)}")
    limit = memory_mib * 1024 * 1024
    text = f"{label} {human_bytes(peak_bytes)} of {human_bytes(int(limit))}"
    return Gauge(text, min(float(peak_bytes), limit), limit)


def _output(size: int | None, truncated: bool | None, cap: float | None) -> str:
    if size is None:
        return f"output {NOT_MEASURED}"
    text = f"output {human_bytes(size)}"
    if truncated:
        text += f", cut to {human_bytes(int(cap))}" if cap is not None else ", cut"
    return text


@dataclass(frozen=True)
class TotalsShown:
    cpu: str
    wall: str
    memory: Gauge
    output: str


def describe_totals(
    *,
    cpu_ms: int,
    wall_ms: int,
    peak_memory_bytes: int | None,
    memory_mib: float | None,
    output_bytes: int,
    runs_cut: int,
) -> TotalsShown:
    output = f"{human_bytes(output_bytes)} in total"
    if runs_cut:
        output += f", {runs_cut} run log{'s' if runs_cut != 1 else ''} cut"
    return TotalsShown(
        cpu=f"{human_seconds(cpu_ms)} in total",
        wall=f"{human_seconds(wall_ms)} in total",
        memory=peak_gauge(peak_memory_bytes, memory_mib, "peak of peaks"),
        output=output,
    )


def reason_beside_log(reason: str | None) -> str:
    """A reason shown above or beside the whole log: without the log's last lines it
    quotes, which would otherwise be read twice, once in each."""
    return (reason or "").split(LOG_TAIL_INTRO, 1)[0]


def log_parts(log: str) -> list[tuple[str, bool]]:
    """The log in pieces, each marked True where it is the cut marker, so a page can
    make the cut stand out (a program printing the same words gets them marked too)."""
    parts: list[tuple[str, bool]] = []
    position = 0
    for found in CUT_MARKER.finditer(log):
        parts.append((log[position : found.start()], False))
        parts.append((found.group(0), True))
        position = found.end()
    parts.append((log[position:], False))
    return [part for part in parts if part[0]]
