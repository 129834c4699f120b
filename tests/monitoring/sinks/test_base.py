"""Rows and histograms: the JSON form of a row, the schema check, bucket edges, labels."""

from __future__ import annotations

import math

import pytest

from stabletrain.monitoring.sinks import METRICS, SCHEMA_VERSION, Histogram, Row, layer_label


def test_a_row_round_trips_through_json_with_its_schema_version() -> None:
    row = Row(7, "encoder.fc", "grad_norm", 0.25)
    obj = row.to_json()
    assert obj == {
        "schema": SCHEMA_VERSION,
        "step": 7,
        "layer": "encoder.fc",
        "metric": "grad_norm",
        "value": 0.25,
    }
    assert Row.from_json(obj) == row


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_value_is_written_as_a_string_and_read_back(value: float) -> None:
    obj = Row(1, None, "loss", value).to_json()
    assert obj["value"] == str(value)
    back = Row.from_json(obj).value
    assert (math.isnan(back) and math.isnan(value)) or back == value


def test_reading_a_row_of_another_schema_or_without_a_field_raises() -> None:
    with pytest.raises(ValueError, match="schema 2 is not 1"):
        Row.from_json({"schema": 2, "step": 1, "layer": None, "metric": "loss", "value": 1})
    with pytest.raises(ValueError, match="no field 'metric'"):
        Row.from_json({"schema": 1, "step": 1, "layer": None, "value": 1})


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("step", None, "step must be an int >= 1"),
        ("step", 0, "step must be an int >= 1"),
        ("step", 2.5, "step must be an int >= 1"),
        ("step", True, "step must be an int >= 1"),
        ("layer", {"name": "fc"}, "layer must be a module name"),
        ("layer", ["fc"], "layer must be a module name"),
        ("metric", 3, "metric must be a name"),
        ("value", None, "value must be a number"),
        ("value", "big", "value must be a number"),
        ("value", "1.5", "value must be a number"),
        ("value", False, "value must be a number"),
    ],
)
def test_a_field_of_the_wrong_type_is_named_with_its_value(
    field: str, bad: object, message: str
) -> None:
    obj = {**Row(3, "fc", "grad_norm", 0.5).to_json(), field: bad}
    with pytest.raises(ValueError, match=message) as error:
        Row.from_json(obj)
    assert repr(bad) in str(error.value)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "INF"])
def test_the_non_finite_strings_read_as_floats(text: str) -> None:
    value = Row.from_json({**Row(1, None, "loss", 0.0).to_json(), "value": text}).value
    assert not math.isfinite(value)


def test_histogram_edges_span_low_to_high_in_equal_buckets() -> None:
    h = Histogram(1, "fc", "weight", -1.0, 1.0, (1.0, 2.0, 3.0, 4.0), 10, 0.0, 5.0)
    assert h.edges == (-1.0, -0.5, 0.0, 0.5, 1.0)


def test_labels_name_the_whole_model_and_the_root_module() -> None:
    assert (layer_label(None), layer_label(""), layer_label("fc")) == ("(model)", "(root)", "fc")


def test_the_metric_table_lists_every_name_once() -> None:
    assert len(METRICS) == len(set(METRICS)) == 13
