"""Seeded demo data that needs no download: operations/support tickets labelled with a category, and (by
``WRITERS``) the other families' data sets, such as the task records of :mod:`kfp_mlops.demo_tasks`.

Each ticket is built from category-specific phrasings, shared filler, product names and occasional
typos, so categories overlap the way real tickets do and a classifier has something to learn.
About 3% of tickets carry another category, as mis-triaged tickets do.
``drift=True`` shifts the category mix towards outages and brings in a product and phrasing that the
undrifted data never uses — the shift a drift detector should notice.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kfp_mlops import demo_metrics, demo_tasks

CATEGORIES: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for {product} this month",
        "my invoice for {product} shows the wrong amount",
        "please refund the duplicate payment on my card",
        "the subscription renewal fee for {product} is higher than agreed",
        "why did my credit card get declined when paying the invoice",
        "need a copy of last month's invoice for accounting",
    ],
    "access": [
        "I cannot log in to {product} after the password reset",
        "my account is locked after too many sign in attempts",
        "two factor code never arrives so I can't sign in",
        "please add my colleague as an admin on {product}",
        "SSO login loops back to the sign in page",
        "the reset password link has expired",
    ],
    "outage": [
        "{product} is down for everyone in our office",
        "getting 503 errors from {product} since this morning",
        "the dashboard in {product} does not load at all",
        "service unavailable when we open {product}",
        "all requests to {product} time out",
        "{product} status page says operational but nothing works",
    ],
    "bug": [
        "the export button in {product} produces an empty file",
        "dates show in the wrong timezone in {product} reports",
        "the search in {product} returns results from other projects",
        "app crashes when I upload a file larger than 10 MB",
        "{product} shows an error message when saving a draft",
        "sorting by priority in {product} is ignored",
    ],
    "feature_request": [
        "could you add dark mode to {product}",
        "it would be great to schedule reports weekly in {product}",
        "please support exporting to Excel from {product}",
        "we would like an API endpoint to bulk update tickets",
        "any plans to integrate {product} with Slack",
        "request: let admins customise the email templates",
    ],
}
PRODUCTS = ["the web app", "the mobile app", "Reports", "Inbox", "Analytics", "the API"]
DRIFT_PRODUCT = "Copilot"
DRIFT_PHRASES = {
    "outage": "{product} assistant stopped answering after the update",
    "bug": "{product} suggestions are wrong since the new release",
}
OPENERS = ["", "", "hi, ", "hello team, ", "urgent: ", "quick question: ", "good morning, "]
CLOSERS = ["", "", " thanks", " please help", " asap", " any update?", " regards"]
BASE_MIX = {"billing": 0.24, "access": 0.24, "outage": 0.12, "bug": 0.25, "feature_request": 0.15}
DRIFT_MIX = {"billing": 0.12, "access": 0.13, "outage": 0.40, "bug": 0.25, "feature_request": 0.10}
MISLABELLED = 0.03
FIELDS = ["ticket_id", "created_at", "channel", "customer_tier", "text", "category"]


def tickets(rows: int, seed: int = 0, drift: bool = False) -> list[dict[str, str]]:
    """Generate ``rows`` tickets; the same arguments always give the same rows."""
    rng = random.Random(seed)
    mix = DRIFT_MIX if drift else BASE_MIX
    categories, weights = list(mix), list(mix.values())
    products = PRODUCTS + [DRIFT_PRODUCT] * 3 if drift else PRODUCTS
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    records = []
    for number in range(rows):
        category = rng.choices(categories, weights)[0]
        phrasings = CATEGORIES[category] + ([DRIFT_PHRASES[category]] * 2 if drift and category in DRIFT_PHRASES else [])
        text = rng.choice(OPENERS) + rng.choice(phrasings).format(product=rng.choice(products)) + rng.choice(CLOSERS)
        records.append(
            {
                "ticket_id": f"T{seed:03d}-{number:06d}",
                "created_at": (start + timedelta(minutes=17 * number + rng.randrange(17))).isoformat(),
                "channel": rng.choices(["email", "chat", "web", "phone"], [0.4, 0.3, 0.2, 0.1])[0],
                "customer_tier": rng.choices(["free", "pro", "enterprise"], [0.5, 0.35, 0.15])[0],
                "text": _typo(text, rng) if rng.random() < 0.15 else text,
                "category": rng.choice(categories) if rng.random() < MISLABELLED else category,
            }
        )
    return records


def _typo(text: str, rng: random.Random) -> str:
    """Swap two adjacent letters once, as hurried writers do."""
    position = rng.randrange(1, len(text) - 1)
    return text[: position - 1] + text[position] + text[position - 1] + text[position + 1 :]


def write(family: str, out: Path, rows: int = 3000, seed: int = 0, drift: bool = False) -> Path:
    """Write ``rows`` rows of the demo data set ``family`` (see WRITERS) as CSV to ``out``, atomically."""
    if family not in WRITERS:
        raise ValueError(f"unknown demo data set {family!r}; known: {', '.join(WRITERS)}")
    return WRITERS[family](Path(out), rows, seed, drift)


def _write_csv(out: Path, fields: list[str], records: list[dict[str, str]]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    partial.replace(out)
    return out


def _write_tickets(out: Path, rows: int, seed: int, drift: bool) -> Path:
    return _write_csv(out, FIELDS, tickets(rows, seed=seed, drift=drift))


# drift=True for task records: the mix moves to heavy work (training, ETL), so types, CPUs, memory and durations shift
TASK_DRIFT_KEEP = {"training": 1.0, "etl": 0.9, "backup": 0.4, "inference": 0.15, "report": 0.15}


def _write_tasks(out: Path, rows: int, seed: int, drift: bool) -> Path:
    records = demo_tasks.tasks(rows * 4 if drift else rows, seed=seed)
    if drift:
        rng = random.Random(seed)
        records = [r for r in records if rng.random() < TASK_DRIFT_KEEP[r["task_type"]]][:rows]
    return _write_csv(out, demo_tasks.FIELDS, records)


# family -> writer(out, rows, seed, drift); `kfp-mlops demo-data FAMILY` and `demo:FAMILY` sources use these
# (metrics: `rows` time steps of 3 hosts, one row per host and step)
WRITERS: dict[str, Callable[[Path, int, int, bool], Path]] = {
    "tickets": _write_tickets, "tasks": _write_tasks, "metrics": demo_metrics.write,
}
DEMO_SCHEME = "demo:"
"""A pipeline parameter ``demo:<family>`` (e.g. a source default ``demo:tasks``) stands for that demo data set: a
local run writes it (3000 rows, seed 0) and passes its path instead; a cluster cannot see local files."""


def demo_parameters(defaults: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, str]:
    """The parameters (given, else their defaults) whose value is ``demo:<family>``: name -> family."""
    values = {**defaults, **arguments}
    found = {}
    for name, value in values.items():
        if isinstance(value, str) and value.startswith(DEMO_SCHEME):
            family = value.removeprefix(DEMO_SCHEME)
            if family not in WRITERS:
                raise ValueError(f"parameter {name!r}: unknown demo data set {value!r}; known: {', '.join(WRITERS)}")
            found[name] = family
    return found


def with_demo_data(defaults: Mapping[str, Any], arguments: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    """``arguments`` with every ``demo:<family>`` value (given or default) replaced by the path of that data set,
    written to ``directory/<family>.csv``."""
    resolved = dict(arguments)
    for name, family in demo_parameters(defaults, arguments).items():
        resolved[name] = str(write(family, Path(directory) / f"{family}.csv"))
    return resolved
