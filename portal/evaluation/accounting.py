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

from portal.core.i18n import gettext as _
from portal.core.i18n import ngettext
from portal.core.templating import human_seconds

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
    count = format(cpus, "g")
    if cpus == 1 or cpus < 1:
        return _("%(count)s CPU", count=count)
    return _("%(count)s CPUs", count=count)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return _("unknown signal")


def ending(exit_code: int | None, exit_signal: int | None) -> str:
    """How the run ended, in the reader's language (English outside a request: the
    worker writes it into a run's stored reason)."""
    if exit_signal is not None:
        return _(
            "killed by signal %(number)s (%(name)s)",
            number=exit_signal,
            name=signal_name(exit_signal),
        )
    if exit_code is not None:
        return _("exit code %(code)s", code=exit_code)
    return _("how it ended: not measured")


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
        cpu, cpu_detail = _("CPU not measured"), ""
    else:
        used = human_seconds(run.cpu_user_ms + run.cpu_system_ms)
        if timeout is not None and cpus is not None:
            cpu = _(
                "CPU %(used)s of %(timeout)s s × %(cpus)s",  # noqa: RUF001 (the sign is meant)
                used=used,
                timeout=format(timeout, "g"),
                cpus=_cpus(cpus),
            )
        else:
            cpu = _("CPU %(used)s", used=used)
        cpu_detail = _(
            "user %(user)s, system %(system)s",
            user=human_seconds(run.cpu_user_ms),
            system=human_seconds(run.cpu_system_ms),
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


def peak_gauge(peak_bytes: int | None, memory_mib: float | None, label: str = "") -> Gauge:
    """`label` says which peak ("peak", the default, or "peak of peaks"), translated."""
    label = label or _("peak")
    if peak_bytes is None:
        return Gauge(_("%(label)s memory not measured", label=label))
    if memory_mib is None:
        return Gauge(_("%(label)s %(peak)s", label=label, peak=human_bytes(peak_bytes)))
    limit = memory_mib * 1024 * 1024
    text = _(
        "%(label)s %(peak)s of %(limit)s",
        label=label,
        peak=human_bytes(peak_bytes),
        limit=human_bytes(int(limit)),
    )
    return Gauge(text, min(float(peak_bytes), limit), limit)


def _output(size: int | None, truncated: bool | None, cap: float | None) -> str:
    if size is None:
        return _("output not measured")
    if truncated and cap is not None:
        return _(
            "output %(size)s, cut to %(cap)s", size=human_bytes(size), cap=human_bytes(int(cap))
        )
    if truncated:
        return _("output %(size)s, cut", size=human_bytes(size))
    return _("output %(size)s", size=human_bytes(size))


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
    output = _("%(amount)s in total", amount=human_bytes(output_bytes))
    if runs_cut:
        output = ngettext(
            "%(amount)s in total, %(num)s run log cut",
            "%(amount)s in total, %(num)s run logs cut",
            runs_cut,
            amount=human_bytes(output_bytes),
        )
    return TotalsShown(
        cpu=_("%(amount)s in total", amount=human_seconds(cpu_ms)),
        wall=_("%(amount)s in total", amount=human_seconds(wall_ms)),
        memory=peak_gauge(peak_memory_bytes, memory_mib, _("peak of peaks")),
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
