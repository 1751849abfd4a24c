"""Path templates: the seed's Sprig text renders, Go layouts format, the sandbox holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from streamer.errors import ConfigError
from streamer.pathtemplate import check_template, go_strftime, render_path

T = datetime(2024, 3, 7, 9, 5, 2, 123456, tzinfo=UTC)


def test_seed_path_renders_with_go_layout() -> None:
    seed = '/backups/mysql-{{ now | date "2006.01.02-15:04:05" }}.sql'
    assert render_path(seed, {}, T) == "backups/mysql-2024.03.07-09:05:02.sql"


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        pytest.param("2006-01-02T15:04:05Z07:00", "2024-03-07T09:05:02Z", id="rfc3339-utc"),
        pytest.param("Jan _2 06 3:04PM", "Mar  7 24 9:05AM", id="kitchen"),
        pytest.param("Monday January 2", "Thursday March 7", id="names"),
        pytest.param("15h04m05s.000", "09h05m02s.123", id="millis"),
        pytest.param("002", "067", id="day-of-year"),
        pytest.param("20060102", "20240307", id="compact"),
    ],
)
def test_go_layouts(layout: str, expected: str) -> None:
    assert go_strftime(T, layout) == expected


def test_go_layout_offsets() -> None:
    t = datetime(2024, 3, 7, 15, 5, 2, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    assert go_strftime(t, "Z07:00 -0700 -07:00") == "-05:30 -0530 -05:30"


def test_variables_and_filters() -> None:
    template = (
        '{{ namespace }}/{{ schedule | upper }}/{{ run | replace "-" "_" }}-{{ now | date "2006" }}'
    )
    variables = {"namespace": "prod", "schedule": "mysql-daily", "run": "mysql-daily-1"}
    assert render_path(template, variables, T) == "prod/MYSQL-DAILY/mysql_daily_1-2024"


def test_plain_jinja_still_works() -> None:
    assert render_path("{{ schedule ~ '-' ~ now.year }}.sql", {"schedule": "s"}, T) == "s-2024.sql"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("{{ now | date ", "syntax error", id="syntax"),
        pytest.param("{{ nope }}", "'nope' is undefined; available: now", id="unknown-variable"),
        pytest.param("{{ ''.__class__.__mro__ }}", "is not allowed", id="dunder-escape"),
        pytest.param("{{ now.__class__.__init__.__globals__ }}", "is not allowed", id="globals"),
        pytest.param("{{ lipsum }}", "'lipsum' is undefined", id="no-jinja-globals"),
        pytest.param("{{ run }}/../../etc/passwd", "'..' segment", id="dot-dot"),
        pytest.param("{{ '' }}", "empty key", id="empty"),
        pytest.param("a{{ '\\n' }}b", "control characters", id="control-chars"),
        pytest.param("{{ 'x' * 2000 }}", "longer than 1024", id="too-long"),
        pytest.param("{{ schedule | date }}", "needs a time", id="date-of-string"),
    ],
)
def test_bad_templates_are_config_errors(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match="path template") as info:
        check_template(template)
    assert message in str(info.value)


def test_unknown_variable_name_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown template variable"):
        render_path("x", {"secret": "v"})


def test_now_defaults_to_current_utc_time() -> None:
    before = datetime.now(UTC).year
    assert render_path('{{ now | date "2006" }}', {}) in {str(before), str(before + 1)}
