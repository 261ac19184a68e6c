"""S3 store throughput against a local S3-compatible server (moto's ThreadedMotoServer, in memory).

    .venv/bin/python bench/s3_storage.py [--sizes-mib 1 16 64] [--repeat 3]

Reports MiB/s for each `S3Store` operation a job touches (worker: put_file, download_to; API at
complete-upload: fetch = one streamed GET hashed on the way; hash_object) and presigned URLs per
second. moto is a single Python process holding objects in memory, so these figures bound the mocapd
side plus moto's own overhead; a real S3 or MinIO endpoint is limited by the network instead.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_EC2_METADATA_DISABLED": "true"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-mib", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from moto.server import ThreadedMotoServer

    from mocapd.storage import S3Store

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    store = S3Store("bench", "mocapd", endpoint_url=f"http://{host}:{port}", region="us-east-1")
    store.client.create_bucket(Bucket="bench")
    print(f"# S3Store on moto {host}:{port}; python {sys.version.split()[0]}; median of {args.repeat}")
    print("| size MiB | put_file MiB/s | download_to MiB/s | fetch (GET+SHA-256) MiB/s | hash_object MiB/s |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for mib in args.sizes_mib:
            src = Path(tmp) / f"src-{mib}"
            src.write_bytes(random.Random(mib).randbytes(mib << 20))
            times: dict[str, list[float]] = {k: [] for k in ("put", "download", "fetch", "hash")}
            for i in range(args.repeat):
                key = f"jobs/b{mib}/artifacts/{i}"
                t = time.perf_counter()
                store.put_file(key, src)
                times["put"].append(time.perf_counter() - t)
                t = time.perf_counter()
                store.download_to(key, Path(tmp) / "dl")
                times["download"].append(time.perf_counter() - t)
                t = time.perf_counter()
                store.fetch(key, Path(tmp) / "fetch")
                times["fetch"].append(time.perf_counter() - t)
                t = time.perf_counter()
                store.hash_object(key)
                times["hash"].append(time.perf_counter() - t)
            rates = [mib / statistics.median(times[k]) for k in ("put", "download", "fetch", "hash")]
            print(f"| {mib} | " + " | ".join(f"{r:.0f}" for r in rates) + " |")
            store.delete_prefix(f"jobs/b{mib}/")
    n = 2000
    t = time.perf_counter()
    for i in range(n):
        store.presign("GET", f"jobs/x/artifacts/{i}", 3600, content_type="video/mp4", download_name="preview.mp4")
    per_s = n / (time.perf_counter() - t)
    print(f"\npresign GET: {per_s:.0f} URLs/s (one /result of 8 files signs 8)")
    server.stop()


if __name__ == "__main__":
    main()
