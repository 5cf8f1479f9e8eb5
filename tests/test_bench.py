"""The benchmarks in smoke mode (tiny sizes, a few seconds each), so they cannot rot, and the
results writer. The full runs are not part of the suite: `scripts/bench` (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import api, authoring, records, restore
from bench.core import Context, Figure, chart, pair_ratios, paired, table, write_section


def smoke(tmp_path: Path) -> Context:
    return Context(smoke=True, runs=1, workdir=tmp_path)


def test_authoring_times_validate_beside_a_bare_interpreter(tmp_path: Path):
    [figure] = authoring.run(smoke(tmp_path))
    assert figure.engine > 0 and figure.baseline is not None and figure.baseline > 0
    assert figure.limit == 1.0 and figure.met is not None


def test_a_section_is_replaced_between_its_markers_and_the_rest_is_kept(tmp_path: Path):
    results = tmp_path / "benchmarks.md"
    results.write_text(
        "# B\n\nhand-written\n<!-- bench:x:start -->\nold\n<!-- bench:x:end -->\ntail\n"
    )
    write_section("x", "new", results)
    write_section("y", "added", results)
    text = results.read_text()
    assert "hand-written" in text and "tail" in text and "old" not in text
    assert "<!-- bench:x:start -->\nnew\n<!-- bench:x:end -->" in text
    assert text.rstrip().endswith("<!-- bench:y:start -->\nadded\n<!-- bench:y:end -->")


def test_the_table_shows_ratio_target_and_whether_it_is_met():
    figures = [
        Figure("b", "speed", "MB/s", 90.0, 100.0, target=0.9),
        Figure("b", "memory", "MiB", 250.0, higher=False, limit=200.0),
    ]
    text = table(figures)
    assert "| speed | 90 MB/s | 100 (direct) | 0.90x | >= 0.90x | yes |" in text
    assert "| memory | 250 MiB | - | - | <= 200 MiB | **no** |" in text


def test_a_paired_figure_shows_the_median_of_its_pair_ratios_with_their_spread():
    order: list[str] = []
    engine, baseline = paired(
        3, lambda: order.append("A") or len(order), lambda: order.append("B") or 10.0
    )
    assert order == ["A", "B", "A", "B", "A", "B"]  # interleaved, not all A then all B
    assert engine == [1, 3, 5] and baseline == [10.0, 10.0, 10.0]
    figure = Figure(
        "b",
        "speed",
        "MB/s",
        90.0,
        100.0,
        target=0.9,
        ratios=pair_ratios([80.0, 95.0, 99.0], [100.0, 100.0, 90.0]),
        differs="the engine hashes; the script does not",
    )
    assert figure.ratio == pytest.approx(0.95)  # not 90 / 100, the ratio of the medians
    text = table([figure])
    assert "| 0.95x (0.80-1.10) | >= 0.90x | yes |" in text
    assert "median of per-pair ratios" in text
    assert "- speed: the engine hashes; the script does not" in text


def test_the_chart_draws_each_targeted_ratio_with_its_target_mark():
    figures = [
        Figure("b", "speed", "MB/s", 90.0, 100.0, target=0.9),
        Figure("b", "many", "/s", 300.0, 10.0, target=4.0),
        Figure("b", "above", "/s", 98.0, 100.0, target=0.9),
        Figure("b", "reported", "/s", 1.0, 2.0),
    ]
    lines = chart(figures).splitlines()
    assert lines[0] == "```text" and lines[-1] == "```"
    assert lines[2] == "speed " + "█" * 36 + "| 0.90x"  # the target just beyond the bar
    assert lines[3].startswith("many  " + "█" * 60 + ">") and lines[3].endswith(" 30.00x")
    assert lines[4] == "above " + "█" * 36 + "┃" + "█" * 2 + " 0.98x"  # the target inside it
    assert len(lines) == 6  # the reported figure has no target: not drawn
    assert chart(figures[3:]) == ""


# --------------------------------------------------------------------------- records, restore, api


def all_positive(figures: list[Figure]) -> bool:
    return all(f.engine > 0 and (f.baseline is None or f.baseline > 0) for f in figures)


@pytest.mark.e2e
def test_records_backs_a_collection_up_beside_the_direct_script_and_kintos_limit(tmp_path: Path):
    figures = records.run(smoke(tmp_path))
    assert [f.measure for f in figures] == [
        "backup throughput",
        "backup vs Kinto's raw page fetch, pipelined (the limit)",
        "backup with permissions, one GET per record",
    ]
    assert all_positive(figures) and all(f.baseline is not None for f in figures)
    assert figures[0].target == 0.9 and figures[0].met is not None
    assert all(len(f.ratios) == 1 and f.differs for f in figures)


@pytest.mark.e2e
def test_restore_writes_a_collection_back_beside_the_direct_script(tmp_path: Path):
    [figure] = restore.run(smoke(tmp_path))
    assert figure.unit == "records/s" and all_positive([figure]) and figure.baseline is not None


@pytest.mark.e2e
def test_api_loads_version_and_roots_beside_the_bare_app_and_kinto(tmp_path: Path):
    figures = api.run(smoke(tmp_path))
    assert len(figures) == 6 and all_positive(figures)
    assert [f.target for f in figures if f.target is not None] == [0.7]


@pytest.mark.e2e
def test_the_fallback_load_generator_measures_the_bare_app(tmp_path: Path):
    with api.start_bare(tmp_path, b'{"version": "x"}') as bare:
        load = api.run_python(api.Request(f"{bare.url}/api/version"), 1.0, tmp_path)
    assert load.requests_per_second > 0 and 0 < load.p50_ms <= load.p99_ms


WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080/api/version
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.34ms    1.23ms  30.00ms   90.00%
    Req/Sec     2.60k   100.00     2.80k    70.00%
  Latency Distribution
     50%  850.00us
     75%   13.00ms
     90%   14.00ms
     99%    1.20s
  26000 requests in 10.00s, 5.00MB read
Requests/sec:   2600.50
Transfer/sec:    512.00KB
"""


def test_wrk_output_gives_requests_per_second_and_percentiles_in_ms():
    assert api.parse_wrk(WRK_OUTPUT) == api.Load(2600.5, 0.85, 1200.0)
    failed = WRK_OUTPUT.replace("Requests/sec", "  Non-2xx or 3xx responses: 3\nRequests/sec")
    with pytest.raises(RuntimeError, match="failures"):
        api.parse_wrk(failed)


def test_a_wrk_script_sends_the_method_body_and_headers():
    request = api.Request("http://h/api/roots", "POST", b'{"a": 1}', ("Content-Type: x/y",))
    assert api.lua_script(request) == (
        'wrk.method = "POST"\nwrk.body = [==[{"a": 1}]==]\nwrk.headers["Content-Type"] = "x/y"\n'
    )


# --------------------------------------------------------------------------- binaries, small


@pytest.mark.e2e
def test_binaries_streams_files_to_a_folder_and_to_s3_and_weighs_the_engines_memory(
    tmp_path: Path,
):
    from bench import binaries

    figures = binaries.run(smoke(tmp_path))
    assert [f.unit for f in figures] == ["MB/s"] * 3 + ["MiB"] * 4
    assert all_positive(figures) and all(f.baseline is not None for f in figures)
    assert [f.target for f in figures] == [0.9, None, 0.9, None, 1.2, None, 1.2]
    assert [f.baseline_name for f in figures[3:5]] == ["direct script", "engine, 1 MiB"]
    assert all(f.limit == 200 and f.ratios for f in figures[3::2])  # against the script
    assert not any(f.higher for f in figures[3:])
    assert not any(tmp_path.rglob("*.bin")), "the generated files are removed"


@pytest.mark.e2e
def test_small_backs_notes_up_at_both_concurrencies_beside_the_direct_script(tmp_path: Path):
    from bench import small

    figures = small.run(smoke(tmp_path))
    assert [f.baseline_name for f in figures] == ["engine, concurrency 1", "direct", "direct"]
    assert all_positive(figures) and [f.target for f in figures] == [4.0, 0.9, 1.3]
    assert len(figures[1].ratios) == 1 and figures[1].differs


@pytest.mark.e2e
def test_the_delay_proxy_holds_every_answer_its_delay(tmp_path: Path):
    import time

    import httpx

    from bench import small

    with (
        small.start_peer("notes", tmp_path, "--count", "3") as saas,
        small.start_peer(
            "delay", tmp_path, "--upstream", small.address(saas), "--seconds", "0.3"
        ) as proxy,
        httpx.Client(trust_env=False, timeout=10) as client,
    ):
        for url in (saas.url, proxy.url, proxy.url):  # the proxy twice: a kept-alive connection
            began = time.perf_counter()
            answer = client.get(f"{url}/workspaces/ws-1/notes/n00002")
            took = time.perf_counter() - began
            assert answer.status_code == 200 and answer.json()["id"] == "n00002"
            assert (took >= 0.3) == (url == proxy.url), (url, took)


@pytest.mark.e2e
def test_files_backs_a_file_up_from_webdav_and_restores_it_beside_the_direct_script(
    tmp_path: Path,
):
    from bench import files

    figures = files.run(smoke(tmp_path))
    assert [f.unit for f in figures] == ["MB/s", "MB/s", "MiB"]
    assert all_positive(figures) and all(f.baseline is not None for f in figures)
    assert [f.target for f in figures] == [0.9, 0.9, 1.2]
    assert figures[2].limit == 200 and not figures[2].higher
    assert not any(tmp_path.rglob("*.bin")), "the generated files are removed"


# --------------------------------------------------------------------------- peers


@pytest.mark.e2e
def test_peers_backs_the_collection_up_with_the_engine_and_each_peer(tmp_path: Path):
    from bench import peers

    figures = peers.run(smoke(tmp_path))  # installs dlt and airbyte-cdk into the peers' cache
    measures = [f.measure for f in figures]
    assert measures[:4] == [
        "extraction, against the fastest peer",
        "extraction, the engine's process kept up across rounds, against the fastest peer",
        *(f"extraction, {name}" for name in ("dlt", "dlt, defaults")),
    ]
    assert measures[-2:] == ["lines of configuration"] * 2 and all_positive(figures)
    assert [f.target for f in figures if f.target] == [1.5, 0.75]


def test_the_peers_configurations_are_each_tools_own_and_the_engines_module_is_valid():
    import ast

    import yaml

    from bench import peers
    from engine.language.loader import validate

    assert validate([peers.ENGINE_MODULE]) == []
    manifest = yaml.safe_load(peers.CONFIG_FILES["airbyte"].read_text())
    [stream] = manifest["streams"]
    assert stream["retriever"]["record_selector"]["extractor"]["field_path"] == ["data"]
    assert "Next-Page" in stream["retriever"]["paginator"]["pagination_strategy"]["cursor_value"]
    for script in ("dlt_kinto.py", "airbyte_run.py"):
        ast.parse((peers.CONFIGS / script).read_text())
    assert "max_table_nesting = 0" in peers.CONFIG_FILES["dlt"].read_text()


def test_configuration_lines_leave_out_blank_lines_and_comments(tmp_path: Path):
    from bench import peers

    config = tmp_path / "c.yaml"
    config.write_text("# a comment\n\na: 1\n  # indented comment\nb: '#not a comment'\n")
    assert peers.config_lines(config) == 2


def test_a_cpu_profile_sample_counts_for_its_innermost_known_layer_and_engine_package(
    tmp_path: Path,
):
    from bench import cpu_profile

    raw = tmp_path / "engine.raw"
    loop = "run_forever (asyncio/base_events.py:607);_run (asyncio/events.py:80)"
    raw.write_text(
        f"{loop};_object (engine/tasks/backup.py:290);dumps (json/__init__.py:231) 3\n"
        f"{loop};_send_once (engine/saas/client.py:300);send (httpx/_client.py:1629) 2\n"
        f"{loop};select (selectors.py:468) 1\n"
        "py-spy's note (or not a stack)\n"
    )
    by_library = cpu_profile.tally(raw, cpu_profile.library)
    by_package = cpu_profile.tally(raw, cpu_profile.engine_package)

    assert by_library == {
        "json": 3,
        "httpx, httpcore, h11, anyio": 2,
        "asyncio, selectors, threads": 1,
    }
    assert by_package == {"engine/tasks": 3, "engine/saas": 2, cpu_profile.NO_ENGINE: 1}
