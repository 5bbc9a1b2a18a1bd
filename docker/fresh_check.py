#!/usr/bin/env python3
"""`make fresh-check`: the README's quick start on a bare Debian 12, in a container.

    python3 docker/fresh_check.py [--keep-engine]

1. engine and base image as `make compose-test` gets them (docker/compose_test.py): our own
   dockerd when none answers, `rinha-local/bookworm:minbase` (debootstrap) built when missing;
2. the committed tree (`git archive HEAD`) copied into a container of that bare image, where
   only what a stock Debian 12 server has is added first: `python3` and `make`;
3. there, as root, exactly the README's two commands: `make test`, then `make up` in the
   background, and a POST /payments and a GET /payments-summary through its Nginx;
4. prints each step's time and exits 0 if all passed.

The container uses the host's network (the engine may have no bridge): the packages come from
the same registries as on the host. Standard library only; run as root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compose_test as ct  # noqa: E402  (this folder: the engine's start and stop)

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "rinha-local/bookworm:minbase"
PORT = 19990  # the stack's Nginx inside the container (host network: keep off 9999)

# what runs inside: the stock additions, then the README's two commands and a payment
SCRIPT = f"""
set -eu
t() {{
    awk -v n="$1" -v a="$2" -v b="$EPOCHREALTIME" \\
        'BEGIN {{ printf "[fresh] %-30s %6.1fs\\n", n, b - a }}'
}}
s=$EPOCHREALTIME
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 make >/dev/null
t "stock additions: python3 make" "$s"
mkdir /src && tar -C /src -xf /in/src.tar && cd /src
s=$EPOCHREALTIME; make test; t "make test" "$s"
s=$EPOCHREALTIME
(make up PORT={PORT} >/tmp/up.log 2>&1 &)
for _ in $(seq 1 600); do grep -q "ready" /tmp/up.log 2>/dev/null && break; sleep 0.1; done
grep -q "ready" /tmp/up.log || {{ cat /tmp/up.log; exit 1; }}
t "make up (ready)" "$s"
python3 - <<'PY'
import json, urllib.request, uuid
base = "http://127.0.0.1:{PORT}"
body = json.dumps({{"correlationId": str(uuid.uuid4()), "amount": 19.90}}).encode()
request = urllib.request.Request(base + "/payments", body, {{"Content-Type": "application/json"}})
with urllib.request.urlopen(request, timeout=5) as r:
    assert 200 <= r.status < 300, r.status
    print("[fresh] POST /payments", r.status)
import time
for _ in range(50):
    with urllib.request.urlopen(base + "/payments-summary", timeout=5) as r:
        summary = json.load(r)
    if summary["default"]["totalRequests"] == 1:
        break
    time.sleep(0.1)
assert summary["default"] == {{"totalRequests": 1, "totalAmount": 19.9}}, summary
print("[fresh] GET /payments-summary", json.dumps(summary))
PY
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-engine", action="store_true")
    args = parser.parse_args()
    env = dict(os.environ)
    started = time.monotonic()
    engine = ct.ensure_engine(env)
    try:
        if not ct.image_exists(IMAGE, env):
            subprocess.run(
                ["bash", str(ROOT / "docker" / "build-base-images.sh")], env=env, check=True
            )
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", f"{tmp}/src.tar", "HEAD"],
                check=True,
            )
            done = subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "host",
                    "--shm-size",
                    "1g",
                    "-v",
                    f"{tmp}:/in:ro",
                    IMAGE,
                    "bash",
                    "-c",
                    SCRIPT,
                ],
                env=env,
            )
    finally:
        if engine is not None and not args.keep_engine:
            ct.stop_engine(engine)
    print(
        f"[fresh] total {time.monotonic() - started:.0f} s: "
        f"{'OK' if done.returncode == 0 else 'FAILED'}"
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
