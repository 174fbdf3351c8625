"""Recurring runs on Kubeflow Pipelines: the cron check done before any connection, and the kfp.Client call.

KFP's API server parses a recurring run's cron with robfig/cron v1 (``cron.Parse``): six fields, **seconds
first** (second minute hour day-of-month month day-of-week), or a descriptor (``@daily``, ``@every 6h``).
Its parser also takes five fields, as seconds to month with no day of week, so a Unix crontab line such as
``0 9 * * 1`` would run at minute 9 of every hour in January: five fields are refused here, with the
six-field spelling to use instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CONCURRENCY = 10
"""KFP's API server accepts max_concurrency 1-10."""
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class ScheduleError(ValueError):
    """A cron expression or schedule setting KFP would refuse or misread; the message says which field and why."""


@dataclass(frozen=True)
class CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    """Names for low, low + 1, ... (months from 1, days of the week from 0)."""


FIELDS = (
    CronField("second", 0, 59),
    CronField("minute", 0, 59),
    CronField("hour", 0, 23),
    CronField("day of month", 1, 31),
    CronField("month", 1, 12, MONTH_NAMES),
    CronField("day of week", 0, 6, DAY_NAMES),
)


def check_cron(expression: str) -> str:
    """The expression, stripped, if KFP reads it as written; else :class:`ScheduleError` naming the problem."""
    text = " ".join(expression.split())
    if not text:
        raise ScheduleError("the cron expression is empty")
    if text.startswith("@"):
        return _check_descriptor(text)
    fields = text.split(" ")
    if len(fields) == 5:
        raise ScheduleError(
            f"{text!r} has 5 fields; KFP's cron has 6, seconds first (second minute hour day-of-month month "
            f"day-of-week), and would read these 5 as second to month. For the Unix crontab schedule, write "
            f"'0 {text}'"
        )
    if len(fields) != 6:
        raise ScheduleError(
            f"{text!r} has {len(fields)} fields; KFP's cron has 6, seconds first: second minute hour day-of-month "
            "month day-of-week (e.g. '0 0 6 * * *' is 06:00 every day), or a descriptor such as @daily"
        )
    for value, field in zip(fields, FIELDS):
        for part in value.split(","):
            _check_range(part, field, text)
    return text


def check_max_concurrency(value: int) -> int:
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ScheduleError(f"--max-concurrency must be 1-{MAX_CONCURRENCY} (KFP's limit), got {value}")
    return value


def create_recurring_run(
    client,
    package_path: str,
    *,
    job_name: str,
    cron: str,
    experiment: str,
    namespace: str | None,
    params: dict,
    max_concurrency: int,
    no_catchup: bool,
):
    """The experiment (created when it does not exist), then the recurring run of the compiled package."""
    found = client.create_experiment(name=experiment, namespace=namespace)
    return client.create_recurring_run(
        experiment_id=found.experiment_id,
        job_name=job_name,
        cron_expression=cron,
        max_concurrency=max_concurrency,
        no_catchup=no_catchup,
        params=params,
        pipeline_package_path=package_path,
        enabled=True,
    )


def _check_descriptor(text: str) -> str:
    if text in DESCRIPTORS:
        return text
    if text.startswith("@every "):
        duration = text.removeprefix("@every ").strip()
        if GO_DURATION.match(duration):
            return text
        raise ScheduleError(f"{text!r}: @every takes a Go duration such as 30m, 6h or 1h30m, not {duration!r}")
    raise ScheduleError(f"{text!r} is not a cron descriptor; KFP knows {', '.join(DESCRIPTORS)} and '@every <duration>'")


def _check_range(part: str, field: CronField, text: str) -> None:
    where = f"{text!r}: the {field.name} field"
    if not part:
        raise ScheduleError(f"{where} has an empty list item")
    span, _, step = part.partition("/")
    if "/" in part:
        if not step.isdigit() or int(step) == 0:
            raise ScheduleError(f"{where}: step {step!r} in {part!r} must be a positive whole number")
    if span in ("*", "?"):
        return
    first, dash, last = span.partition("-")
    low = _value(first, field, where)
    high = _value(last, field, where) if dash else low
    if low > high:
        raise ScheduleError(f"{where}: range {span!r} starts after it ends")


def _value(token: str, field: CronField, where: str) -> int:
    if token.lower() in field.names:
        return field.low + field.names.index(token.lower())
    if not token.isdigit():
        allowed = f"{field.low}-{field.high}" + (f" or {field.names[0].upper()}-{field.names[-1].upper()}" if field.names else "")
        raise ScheduleError(f"{where}: {token!r} is not a value ({allowed}), '*', '?', a range a-b or a step /n")
    number = int(token)
    if not field.low <= number <= field.high:
        raise ScheduleError(f"{where}: {number} is outside {field.low}-{field.high}")
    return number
