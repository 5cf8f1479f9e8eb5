"""Peak memory of base64 backups: one 50 MiB file backed up by a fresh `engine serve` process
each way (raw download; base64 text decoded as it arrives; base64 inside a JSON answer,
stream-parsed), from Python's http.server, to a local folder. Prints each way's wall time and
peak resident memory (VmHWM) and the base64 ways' excess over the raw way (the target: under
64 MiB). Not part of the timed suite: run it as `python -m bench.base64_memory [MiB]`."""

from __future__ import annotations

import base64
import json
import random
import sys
import tempfile
from pathlib import Path

from bench import serving
from bench.core import ROOT
from scripts import servers

MODULE = ROOT / "bench" / "modules" / "base64"
WAYS = ("raw", "text", "json")


def _files(folder: Path, size: int) -> bytes:
    data = random.Random(50).randbytes(size)
    (folder / "data.bin").write_bytes(data)
    (folder / "data.b64").write_bytes(base64.encodebytes(data))
    content = base64.b64encode(data).decode()
    (folder / "data.json").write_text(
        '{"name": "data.bin", "file": {"content": "' + content + '"}}'
    )
    (folder / "drives.json").write_text(json.dumps([{"id": way} for way in WAYS]))
    return data


def main(mib: int = 50) -> int:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        (folder / "site").mkdir()
        _files(folder / "site", mib << 20)
        port = servers.free_port()
        argv = [sys.executable, "-m", "http.server", "--bind", servers.HOST, str(port)]
        url = f"http://{servers.HOST}:{port}"
        site = servers.start_process(
            "site",
            argv,
            url=url,
            health_url=f"{url}/drives.json",
            log_path=folder / "site.log",
            cwd=folder / "site",
        )
        peaks = {}
        with site:
            env = {"ENGINE_BACKUP_DIR": str(folder / "backups")}
            for way in WAYS:
                with serving.start_engine(MODULE, folder / "logs", env) as engine:
                    auth = {"settings": {"server_url": url}}
                    ctx = serving.roots(engine.url, auth)[way]
                    storage = {"url": str(folder / "backups" / way)}
                    done = serving.backup(engine.url, auth, ctx, storage)
                    peaks[way] = serving.peak_mib(engine.process.pid)
                manifest = json.loads((folder / "backups" / way / "manifest.json").read_text())
                sizes = [entry["rawSize"] for entry in manifest["objects"]]
                if sizes != [mib << 20]:
                    raise RuntimeError(f"the {way} backup stored {sizes} bytes, not {mib} MiB")
                print(f"{way:5} {done.seconds:6.2f} s  peak {peaks[way]:6.1f} MiB")
        for way in ("text", "json"):
            print(f"{way}: {peaks[way] - peaks['raw']:+.1f} MiB over raw")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(arg) for arg in sys.argv[1:])))
