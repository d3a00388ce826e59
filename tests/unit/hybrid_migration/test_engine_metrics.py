from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.hybrid_migration.engine_metrics import (
    Histogram,
    Series,
    difference,
    fleet_sum,
    get,
    get_json,
    parse_metrics,
    scrape,
    similar_url,
    value,
)
from ansible.module_utils.hybrid_migration.errors import TransientError
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client import Histogram as PromHistogram

INF = float("inf")


def exposition() -> str:
    registry = CollectorRegistry()
    requests = Counter("engine_requests", "Requests.", ["endpoint", "status"], registry=registry)
    requests.labels(endpoint="similar", status="200").inc(3)
    requests.labels(endpoint="similar", status="503").inc(2)
    requests.labels(endpoint="write", status="200").inc(5)
    latency = PromHistogram("search_latency_ms", "Latency.", buckets=(5, 10, 25, 50), registry=registry)
    for observed in (1, 2, 3, 7, 8, 20, 100):
        latency.observe(observed)
    return generate_latest(registry).decode()


EXPOSITION = exposition()


@pytest.fixture(scope="module")
def series() -> Series:
    return parse_metrics(EXPOSITION)


# parse_metrics


def test_parse_metrics_counter_samples_keyed_by_sorted_labels(series: Series) -> None:
    assert series[("engine_requests_total", (("endpoint", "similar"), ("status", "200")))] == 3.0
    assert series[("engine_requests_total", (("endpoint", "similar"), ("status", "503")))] == 2.0
    assert series[("engine_requests_total", (("endpoint", "write"), ("status", "200")))] == 5.0


def test_parse_metrics_histogram_samples(series: Series) -> None:
    buckets = {dict(labels)["le"]: v for (name, labels), v in series.items() if name == "search_latency_ms_bucket"}
    assert buckets == {"5.0": 3.0, "10.0": 5.0, "25.0": 6.0, "50.0": 6.0, "+Inf": 7.0}
    assert series[("search_latency_ms_count", ())] == 7.0
    assert series[("search_latency_ms_sum", ())] == 141.0


def test_parse_metrics_values_are_floats(series: Series) -> None:
    assert all(isinstance(v, float) for v in series.values())


# fleet_sum, value, difference


def test_fleet_sum_adds_matching_samples_and_keeps_the_rest() -> None:
    a = {("x_total", ()): 1.0, ("y_total", (("k", "v"),)): 2.0}
    b = {("x_total", ()): 10.0, ("z_total", ()): 5.0}
    assert fleet_sum([a, b]) == {("x_total", ()): 11.0, ("y_total", (("k", "v"),)): 2.0, ("z_total", ()): 5.0}
    assert fleet_sum([]) == {}
    assert type(fleet_sum([a])) is dict


def test_fleet_sum_of_two_real_expositions(series: Series) -> None:
    total = fleet_sum([series, series])
    assert value(total, "engine_requests_total") == 20.0
    assert total[("search_latency_ms_bucket", (("le", "+Inf"),))] == 14.0


def test_value_sums_all_label_sets_without_filter(series: Series) -> None:
    assert value(series, "engine_requests_total") == 10.0


def test_value_filters_by_labels(series: Series) -> None:
    assert value(series, "engine_requests_total", status="200") == 8.0
    assert value(series, "engine_requests_total", status="503") == 2.0
    assert value(series, "engine_requests_total", endpoint="similar", status="200") == 3.0
    assert value(series, "engine_requests_total", status="404") == 0.0
    assert value(series, "no_such_metric") == 0.0


def test_difference_counts_increase_per_sample() -> None:
    earlier = {("a_total", ()): 10.0, ("b_total", ()): 4.0}
    later = {("a_total", ()): 15.0, ("b_total", ()): 4.0, ("c_total", ()): 2.0}
    assert difference(later, earlier) == {("a_total", ()): 5.0, ("b_total", ()): 0.0, ("c_total", ()): 2.0}


def test_difference_counter_that_went_down_counts_from_zero() -> None:
    earlier = {("a_total", ()): 100.0}
    later = {("a_total", ()): 7.0}
    assert difference(later, earlier) == {("a_total", ()): 7.0}


def test_difference_drops_samples_gone_from_later() -> None:
    assert difference({}, {("a_total", ()): 3.0}) == {}


# Histogram


def test_histogram_from_series_sorts_buckets_numerically(series: Series) -> None:
    histogram = Histogram.from_series(series, "search_latency_ms")
    assert histogram.buckets == [(5.0, 3.0), (10.0, 5.0), (25.0, 6.0), (50.0, 6.0), (INF, 7.0)]
    assert histogram.count == 7.0
    assert histogram.total == 141.0
    assert histogram.mean == pytest.approx(141 / 7)


def test_histogram_from_series_sums_buckets_across_label_sets() -> None:
    series: Series = {
        ("h_bucket", (("instance", "a"), ("le", "1.0"))): 1.0,
        ("h_bucket", (("instance", "b"), ("le", "1.0"))): 2.0,
        ("h_bucket", (("instance", "a"), ("le", "+Inf"))): 2.0,
        ("h_bucket", (("instance", "b"), ("le", "+Inf"))): 4.0,
        ("h_count", (("instance", "a"),)): 2.0,
        ("h_count", (("instance", "b"),)): 4.0,
        ("h_sum", (("instance", "a"),)): 3.0,
        ("h_sum", (("instance", "b"),)): 9.0,
        ("other_bucket", (("le", "1.0"),)): 50.0,
    }
    histogram = Histogram.from_series(series, "h")
    assert histogram.buckets == [(1.0, 3.0), (INF, 6.0)]
    assert (histogram.count, histogram.total, histogram.mean) == (6.0, 12.0, 2.0)


@pytest.mark.parametrize(
    ("share", "expected"),
    [
        # rank 3.5 lands in (5, 10] holding ranks 3..5: 5 + 5 * (0.5 / 2)
        (0.50, 6.25),
        # rank 2.1 in (0, 5] holding 0..3: 5 * 2.1 / 3
        (0.30, 3.5),
        # rank 5.6 in (10, 25] holding 5..6: 10 + 15 * 0.6
        (0.80, 19.0),
        # rank 6 is exactly the top of (10, 25]
        (6 / 7, 25.0),
        # rank 6.65 is past every finite bucket: the highest finite bound, as histogram_quantile does
        (0.95, 50.0),
        (1.0, 50.0),
        (0.0, 0.0),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(series: Series, share: float, expected: float) -> None:
    histogram = Histogram.from_series(series, "search_latency_ms")
    assert histogram.quantile(share) == pytest.approx(expected)


def test_histogram_quantile_skips_empty_buckets() -> None:
    histogram = Histogram([(1.0, 0.0), (2.0, 0.0), (4.0, 4.0), (INF, 4.0)], 4.0, 12.0)
    # rank 2 of 4, all in (2, 4]
    assert histogram.quantile(0.5) == pytest.approx(3.0)


def test_histogram_empty() -> None:
    empty = Histogram.from_series({}, "search_latency_ms")
    assert empty.buckets == []
    assert empty.count == 0.0
    assert empty.mean is None
    assert empty.quantile(0.5) is None
    assert Histogram([(1.0, 0.0), (INF, 0.0)], 0.0, 0.0).quantile(0.5) is None
    assert Histogram([], 3.0, 3.0).quantile(0.5) is None


def test_histogram_quantile_without_inf_bucket_returns_highest_bound() -> None:
    histogram = Histogram([(1.0, 1.0), (2.0, 2.0)], 4.0, 10.0)
    assert histogram.quantile(0.9) == 2.0


def test_histogram_mean_over_observations() -> None:
    assert math.isclose(Histogram([(INF, 4.0)], 4.0, 10.0).mean or 0.0, 2.5)


# HTTP


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes = {
            "/metrics": (200, EXPOSITION.encode(), "text/plain; version=0.0.4"),
            "/json": (200, json.dumps({"mode": "shadow", "n": 3}).encode(), "application/json"),
            "/text": (200, "x" * 300 + "é", "text/plain"),
            "/bad/metrics": (503, b"overloaded", "text/plain"),
        }
        status, body, content_type = routes.get(self.path, (404, b'{"error": "no route"}', "application/json"))
        payload = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def refused() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_get_200(server: str) -> None:
    status, body = get(f"{server}/json", 2)
    assert status == 200
    assert json.loads(body) == {"mode": "shadow", "n": 3}


def test_get_404_is_returned_not_raised(server: str) -> None:
    assert get(f"{server}/nowhere", 2) == (404, b'{"error": "no route"}')


def test_get_connection_refused_raises_transient(refused: str) -> None:
    with pytest.raises(TransientError, match=rf"engine at {refused}/metrics did not answer"):
        get(f"{refused}/metrics", 2)


def test_get_json_parses_and_keeps_status(server: str) -> None:
    assert get_json(f"{server}/json", 2) == (200, {"mode": "shadow", "n": 3})
    assert get_json(f"{server}/nowhere", 2) == (404, {"error": "no route"})


def test_get_json_non_json_body_becomes_error_of_its_first_200_bytes(server: str) -> None:
    status, body = get_json(f"{server}/text", 2)
    assert status == 200
    assert body == {"error": "x" * 200}


def test_scrape_parses_metrics(server: str) -> None:
    assert scrape(server + "/", 2) == parse_metrics(EXPOSITION)


def test_scrape_non_200_raises_transient(server: str) -> None:
    with pytest.raises(TransientError, match=r"answered /metrics with HTTP 503"):
        scrape(f"{server}/bad", 2)


def test_scrape_refused_raises_transient(refused: str) -> None:
    with pytest.raises(TransientError, match="did not answer"):
        scrape(refused, 2)


def test_similar_url_quotes_the_id() -> None:
    assert similar_url("http://e:8080/", "a/b c?d") == "http://e:8080/media/a%2Fb%20c%3Fd/similar?k=10"
    assert similar_url("http://e:8080", "m-1", k=3) == "http://e:8080/media/m-1/similar?k=3"
