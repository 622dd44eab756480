"""Numbers and changes in words a product manager reads: pure formatting, no I/O.

    count(1234)              "1,234"
    plural(1, "user")        "1 user"         plural(2, "user") "2 users"
    number(0.13684)          "0.137"          number(442705.2) "442,705"
    percent(0.1532)          "15%"            percent(0.0244) "2.4%"
    remaining(12.2)          "about 13 more days"   remaining(442705) "more than a year"
    unit_noun("targetingKey") ("user", "users")
    Change                   one comparison's always-valid change: relative when bounded, else absolute

The decision (`flagd.results.decision`), the health checks (`judgments`) and the page's headline
(`narrative`) all say numbers through here, so the same number reads the same everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from flagd.experiments.model import MetricType
from flagd.results.metric_types import kind
from flagd.results.model import Comparison, Estimate

MINUS = "\u2212"
"""The minus sign (U+2212), not a hyphen."""

_UNIT_NOUNS: tuple[tuple[str, str, str], ...] = (
    ("session", "session", "sessions"),
    ("device", "device", "devices"),
    ("account", "account", "accounts"),
    ("company", "company", "companies"),
    ("org", "organisation", "organisations"),
    ("team", "team", "teams"),
    ("household", "household", "households"),
    ("store", "store", "stores"),
    ("user", "user", "users"),
    ("customer", "customer", "customers"),
    ("visitor", "visitor", "visitors"),
)


def unit_noun(attribute: str) -> tuple[str, str]:
    """What the experiment randomises, as (singular, plural): the context attribute that identifies a unit,
    read as a person would. OpenFeature's targetingKey identifies the user being evaluated."""
    if attribute == "targetingKey":
        return "user", "users"
    lowered = attribute.lower()
    return next(((one, many) for part, one, many in _UNIT_NOUNS if part in lowered), ("unit", "units"))


def count(n: int) -> str:
    return f"{n:,}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """ "1 user", "2 users", "1,204 users"; `many` for irregular plurals."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def number(value: float, significant: int = 3) -> str:
    """About `significant` significant digits, thousands separated, never in exponent notation;
    a whole number from 100 on."""
    if not math.isfinite(value):
        return "unbounded"
    magnitude = abs(value)
    if magnitude >= 100 or magnitude == 0:
        text = f"{magnitude:,.0f}"
    else:
        decimals = max(significant - 1 - math.floor(math.log10(magnitude)), 0)
        text = _trim(f"{magnitude:,.{decimals}f}")
    return text if value >= 0 or text == "0" else MINUS + text


def signed(text: str) -> str:
    """A formatted number with its sign: "+12", "\u22123.4" (a minus sign), "0"."""
    return text if text.startswith(MINUS) or text == "0" or text == "0%" else "+" + text


def percent(share: float) -> str:
    """A share or relative change as a percentage: "15%", "2.4%", "0.35%", "5,627%"."""
    if not math.isfinite(share):
        return "unbounded"
    value = share * 100
    return number(value, 2 if abs(value) < 10 else 3) + "%"


def remaining(days: float | None) -> str:
    """How long more, in days, weeks or months: "about 13 more days", "about 3 more weeks"."""
    if days is None or not math.isfinite(days) or days > 365:
        return "more than a year"
    if days < 1:
        return "less than a day"
    if days <= 13.5:
        whole = math.ceil(days)
        return f"about {whole} more day" + ("s" if whole != 1 else "")
    if days < 60:
        return f"about {round(days / 7)} more weeks"
    return f"about {round(days / 30)} more months"


def day(moment: date) -> str:
    """ "Nov 24" """
    return f"{moment:%b} {moment.day}"


def sentence(text: str) -> str:
    """`text` with a capital first letter and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def clause(text: str) -> str:
    """A sentence to follow a colon: its first letter lower case (every check starts with a plain word)."""
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def absolute_unit(metric_type: MetricType, noun: str = "unit") -> str:
    """What an absolute difference of the metric is in ("percentage points", "per user", "NPS points")."""
    return kind(metric_type).unit.replace("per unit", f"per {noun}")


@dataclass(frozen=True, slots=True)
class Change:
    """A comparison's always-valid change, on the scale that reads best: relative (a share of control's
    value) when its interval is bounded, else absolute (in the metric's unit, always bounded)."""

    effect: float
    low: float
    high: float
    relative: bool
    metric_type: MetricType
    noun: str = "unit"

    @staticmethod
    def of(comparison: Comparison, metric_type: MetricType, noun: str = "unit") -> Change | None:
        relative, absolute = comparison.relative.sequential, comparison.absolute.sequential
        if (
            isinstance(relative, Estimate)
            and math.isfinite(relative.ci_low)
            and math.isfinite(relative.ci_high)
        ):
            return Change(relative.effect, relative.ci_low, relative.ci_high, True, metric_type, noun)
        if isinstance(absolute, Estimate):
            return Change(absolute.effect, absolute.ci_low, absolute.ci_high, False, metric_type, noun)
        return None

    def amount(self, value: float) -> str:
        """A magnitude on this change's scale, without its unit words ("15%", "1.2")."""
        if self.relative:
            return percent(abs(value))
        factor = 100.0 if kind(self.metric_type).percent_points else 1.0
        return number(abs(value) * factor)

    @property
    def unit(self) -> str:
        """The words after an absolute amount ("" for a relative one)."""
        return "" if self.relative else " " + absolute_unit(self.metric_type, self.noun)

    def by(self) -> str:
        """For a change whose interval lies on one side of zero: "15% (between 2% and 30%)"."""
        if self.low < 0 < self.high:  # the relative interval of a change the absolute one decided
            return f"{self.amount(self.effect)}{self.unit} ({self._between()})"
        low, high = sorted((abs(self.low), abs(self.high)))
        return f"{self.amount(self.effect)}{self.unit} (between {self.amount(low)} and {self.amount(high)})"

    def span(self, than: str) -> str:
        """Where the change lies against `than`, either side: "between 3% lower and 8% higher than Classic"."""

        return f"{self._between()} than {than}"

    def _between(self) -> str:
        def side(value: float) -> str:
            if value == 0:
                return "the same"
            return f"{self.amount(value)}{self.unit} {'higher' if value > 0 else 'lower'}"

        return f"between {side(self.low)} and {side(self.high)}"

    def signed_parts(self) -> tuple[str, str]:
        """The change and its interval apart, as a table stacks them: ("+15%", "+2% to +30%")."""
        effect, low, high = (
            signed(self.amount(v)) if v >= 0 else MINUS + self.amount(v)
            for v in (self.effect, self.low, self.high)
        )
        return f"{effect}{self.unit}", f"{low} to {high}"

    def signed(self) -> str:
        """The change and its interval with signs, as a table shows it: "+15% (+2% to +30%)"."""
        effect, interval = self.signed_parts()
        return f"{effect} ({interval})"
