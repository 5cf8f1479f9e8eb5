"""engine/saas/recorder.py: the exchanges engine dev's test read shows, secrets masked."""

from __future__ import annotations

from engine.redaction import guarding
from engine.saas import recorder


def test_nothing_is_recorded_while_no_recording_is_on() -> None:
    assert not recorder.on()
    recorder.record(
        "GET", "GET /items", "https://saas.example/items", 200, seconds=0.01, body=b"[]"
    )
    with recorder.recording() as exchanges:
        pass
    assert exchanges == []


def test_an_exchange_has_its_secrets_masked_in_its_url_and_its_answer() -> None:
    with guarding({"key_secret": "sesame-1234"}), recorder.recording() as exchanges:
        assert recorder.on()
        url = "https://saas.example/items?key=sesame-1234"
        recorder.record(
            "GET", "GET /items", url, 200, seconds=0.25, body=b'{"echo": "sesame-1234"}'
        )
    [exchange] = exchanges
    assert exchange.url == "https://saas.example/items?key=***"
    assert exchange.body == '{"echo": "***"}'
    assert (exchange.method, exchange.label, exchange.status) == ("GET", "GET /items", 200)
    assert exchange.milliseconds == 250
    assert not recorder.on()


def test_a_credentials_exchange_answer_is_never_shown() -> None:
    with recorder.recording() as exchanges:
        recorder.record(
            "POST", "POST /token", "https://idp.example/token", 200, seconds=0.1, body=None
        )
    assert exchanges[0].body == recorder.NOT_SHOWN


def test_a_long_answer_is_cut_to_the_limit() -> None:
    with recorder.recording() as exchanges:
        recorder.record(
            "GET", "GET /", "https://s.example/", 200, seconds=0, body=b"x" * (2 * 65536)
        )
    assert len(exchanges[0].body) == recorder.BODY_LIMIT


def test_the_records_a_listing_selected_go_with_the_latest_answer_of_their_url() -> None:
    url = "https://saas.example/items?page=2"
    with guarding({"key_secret": "sesame-1234"}), recorder.recording() as exchanges:
        for status in (503, 200):
            recorder.record("GET", "GET /items", url, status, seconds=0, body=b"[]")
        recorder.selected(url, [{"id": 1, "note": "sesame-1234"}, {"id": 2}])
        recorder.selected("https://saas.example/other", [{"id": 3}])
    assert [exchange.selected for exchange in exchanges] == [None, 2]
    assert '"note": "***"' in (exchanges[1].records or "")


def test_a_planned_write_keeps_its_masked_headers_and_body_and_only_the_first_are_kept() -> None:
    headers = {"Content-Type": "application/json", "X-Key": "sesame-1234"}
    with guarding({"key_secret": "sesame-1234"}), recorder.recording() as exchanges:
        for index in range(recorder.PLANNED_SHOWN + 5):
            body = f'{{"n": {index}, "key": "sesame-1234"}}'.encode()
            recorder.planned("PUT", "PUT /items/{id}", f"https://s.example/{index}", headers, body)
        recorder.planned("PUT", "PUT /big", "https://s.example/big", {}, b"x")
    assert len(exchanges) == recorder.PLANNED_SHOWN
    first = exchanges[0]
    assert (first.planned, first.status, first.sent) == (True, 0, '{"n": 0, "key": "***"}')
    assert '"X-Key": "***"' in (first.headers or "")


def test_a_planned_write_s_body_is_cut_to_the_limit() -> None:
    with recorder.recording() as exchanges:
        recorder.planned("POST", "POST /", "https://s.example/", {}, b"y" * (64 * 1024))
    assert len(exchanges[0].sent or "") == recorder.REQUEST_LIMIT


def test_what_a_filter_kept_goes_with_the_answer_its_selector_picked_from() -> None:
    url = "https://saas.example/items"
    with recorder.recording() as exchanges:
        recorder.record("GET", "GET /items", url, 200, seconds=0, body=b"[]")
        recorder.selected(url, [{"id": 1}, {"id": 2}, {"id": 3}])
        recorder.kept(url, [{"id": 2}])
    assert (exchanges[0].selected, exchanges[0].kept) == (3, 1)
    assert '"id": 2' in (exchanges[0].kept_records or "")


def test_only_a_sample_stops_a_listing_after_its_pages() -> None:
    assert not recorder.past_limit(1000) and recorder.sampled_step() is None
    with recorder.sampling("records", 2) as bounds:
        assert recorder.sampled_step() == "records"
        assert not recorder.past_limit(1) and not bounds.stopped
        assert recorder.past_limit(2) and bounds.stopped
    assert not recorder.past_limit(2)
