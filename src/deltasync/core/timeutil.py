"""Calendar arithmetic on block time, without a clock.

Block time is an integer count of nanoseconds since the Unix epoch, stamped by
the sequencer. These helpers convert between it and civil dates (proleptic
Gregorian, UTC) with integer arithmetic only (Howard Hinnant's algorithms).
"""

from __future__ import annotations

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR
NS_PER_YEAR_365 = 365 * NS_PER_DAY

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a civil date."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a count of days since 1970-01-01."""
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    day_of_era = days - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    year = year_of_era + era * 400
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return year + (month <= 2), month, day


def is_valid_date(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    return civil_from_days(days_from_civil(year, month, day)) == (year, month, day)


def format_ddmmmyy(days: int) -> str:
    """Deribit's expiry spelling: 27DEC26 (day without leading zero: 5JAN27)."""
    year, month, day = civil_from_days(days)
    return f"{day}{MONTHS[month - 1]}{year % 100:02d}"
