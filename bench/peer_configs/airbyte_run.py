# The destination side of bench/peer_configs/airbyte_kinto.yaml: runs the manifest with the
# CDK's ConcurrentDeclarativeSource (what the source-declarative-manifest entrypoint builds) and
# writes each RECORD message, serialized as the source would print it for a destination, as one
# line of a file. `python airbyte_run.py MANIFEST OUT_FILE`, Kinto's URL, user, password and
# collection path in KINTO_URL, KINTO_USER, KINTO_PASSWORD, KINTO_PATH.
import json
import logging
import os
import sys
import time
from pathlib import Path

import yaml
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import (
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    Type,
)
from airbyte_cdk.sources.declarative.concurrent_declarative_source import (
    ConcurrentDeclarativeSource,
)


def catalog() -> ConfiguredAirbyteCatalog:
    stream = {
        "stream": {
            "name": "records",
            "json_schema": {},
            "supported_sync_modes": ["full_refresh"],
        },
        "sync_mode": "full_refresh",
        "destination_sync_mode": "overwrite",
    }
    return ConfiguredAirbyteCatalogSerializer.load({"streams": [stream]})


def main() -> None:
    manifest_path, out = sys.argv[1], sys.argv[2]
    with Path(manifest_path).open() as file:
        manifest = yaml.safe_load(file)
    config = {
        "url": os.environ["KINTO_URL"],
        "path": os.environ["KINTO_PATH"],
        "username": os.environ["KINTO_USER"],
        "password": os.environ["KINTO_PASSWORD"],
    }
    configured = catalog()
    source = ConcurrentDeclarativeSource(
        catalog=configured, config=config, state=[], source_config=manifest
    )
    logger = logging.getLogger("airbyte")
    began = time.perf_counter()
    with Path(out).open("w") as file:
        for message in source.read(logger, config, configured, []):
            if message.type == Type.RECORD:
                file.write(AirbyteEntrypoint.airbyte_message_to_string(message) + "\n")
    print(json.dumps({"extract_seconds": time.perf_counter() - began}))


if __name__ == "__main__":
    main()
