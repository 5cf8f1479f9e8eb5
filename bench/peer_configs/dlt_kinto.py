# dlt 1.31.0: one Kinto collection to local JSON Lines files, as bench/peers.py runs it (in dlt's
# own virtual environment: `python dlt_kinto.py OUT_FOLDER [--defaults]`, Kinto's URL, user,
# password and collection path in KINTO_URL, KINTO_USER, KINTO_PASSWORD, KINTO_PATH).
#
# Idiomatic as dlt's docs teach it: the declarative `rest_api` source
# (https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/basic), a custom paginator for
# a next-page URL in a response header (.../rest_api/advanced#implementing-a-custom-paginator:
# dlt ships HeaderLinkPaginator for RFC 8288 `Link`, not for Kinto's `Next-Page`), and the
# filesystem destination with the jsonl loader format
# (https://dlthub.com/docs/dlt-ecosystem/destinations/filesystem). `max_table_nesting = 0` keeps
# one table (the engine's JSON Lines keep records whole); --defaults leaves dlt's nesting on,
# which splits `tags` and `nested.level.deep` into child tables.
#
# What dlt does that the engine does not: infers and evolves a schema, normalizes (flattens
# nested objects into columns, adds _dlt_id and _dlt_load_id), keeps load packages and pipeline
# state, can load to warehouses. What it does not do that the engine does: no platform API or
# task status, no integrity hash or manifest, no restore, no fsync of what it wrote.
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.paginators import BaseNextUrlPaginator
from dlt.sources.rest_api import rest_api_source


class NextPagePaginator(BaseNextUrlPaginator):
    """Kinto's pagination: the next page's full URL in the Next-Page header."""

    def update_state(self, response: Any, data: Any = None) -> None:
        self._next_reference = response.headers.get("Next-Page")


def kinto_source(nesting: bool) -> Any:
    source = rest_api_source(
        {
            "client": {
                "base_url": os.environ["KINTO_URL"].rstrip("/") + "/",
                "auth": {
                    "type": "http_basic",
                    "username": os.environ["KINTO_USER"],
                    "password": os.environ["KINTO_PASSWORD"],
                },
                "paginator": NextPagePaginator(),
            },
            "resources": [
                {
                    "name": "records",
                    "endpoint": {"path": os.environ["KINTO_PATH"], "data_selector": "data"},
                    "write_disposition": "replace",
                }
            ],
        }
    )
    if not nesting:
        source.max_table_nesting = 0
    return source


def main() -> None:
    out, nesting = Path(sys.argv[1]), "--defaults" in sys.argv[2:]
    pipeline = dlt.pipeline(
        pipeline_name="kinto",
        pipelines_dir=str(out / ".pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=str(out / "files")),
        dataset_name="kinto",
    )
    began = time.perf_counter()
    pipeline.extract(kinto_source(nesting), loader_file_format="jsonl")
    extracted = time.perf_counter()
    pipeline.normalize()
    pipeline.load()
    done = time.perf_counter()
    print(json.dumps({"extract_seconds": extracted - began, "run_seconds": done - began}))


if __name__ == "__main__":
    main()
