#!/usr/bin/env python3
"""Build an image with the Docker engine's BuildKit through its HTTP API.

Why: the docker CLI on the CI machine has no buildx plugin, and without it
`DOCKER_BUILDKIT=1 docker build` refuses to run while the legacy builder
builds (and pulls the base of) every stage before the target. The engine
itself (>= 18.09) runs BuildKit for `POST /build?version=2` with an uploaded
tar context, and BuildKit builds only the stages the target needs.

Usage:
  docker_api_build.py --context DIR --tag NAME:TAG [--target STAGE]
                      [--build-arg K=V ...] [--dockerfile Dockerfile]
  docker_api_build.py --prune-since 2006-01-02T15:04:05Z
      removes the build-cache records created since then (the CLI's
      `docker builder prune` needs buildx too); records still used by an
      image stay until the image is removed.
  docker_api_build.py --count-since 2006-01-02T15:04:05Z
  docker_api_build.py --record-ids
      prints the ids of the build-cache records there are now, one a line
      (take them before and after a build: the new ones are the build's).
  docker_api_build.py --prune-ids ID [ID ...]
      removes exactly those records (those still in use by an image stay
      until it is removed); prints the ids that are still there.

The context directory is sent as it is (no .dockerignore handling): callers
pass a small, prepared directory. Exit status 0 when the image was built and
tagged, 1 otherwise, with the builder's error and its last log lines.
"""

import argparse
import base64
import http.client
import io
import json
import os
import re
import socket
import sys
import tarfile
import urllib.parse


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def connection(timeout):
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return UnixHTTPConnection(host[len("unix://"):], timeout)
    if host.startswith("tcp://"):
        hostport = host[len("tcp://"):]
        return http.client.HTTPConnection(hostport, timeout=timeout)
    sys.exit(f"docker_api_build: unsupported DOCKER_HOST {host!r}")


def api_version(timeout):
    conn = connection(timeout)
    conn.request("GET", "/version")
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit(f"docker_api_build: GET /version -> {resp.status}: {body[:200]!r}")
    return json.loads(body)["ApiVersion"]


def context_tar(directory):
    buf = io.BytesIO()
    # ustar, not Python's default pax: the engine decides "tar or bare
    # Dockerfile?" from the first 512 bytes, and a pax extended header there
    # makes it read the whole tar as a Dockerfile.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, directory))
                info.uid = info.gid = 0
                info.mtime = int(info.mtime)
                info.uname = info.gname = "root"
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)
    return buf.getvalue()


def printable_runs(blob, minimum=8):
    return [m.decode("utf-8", "replace")
            for m in re.findall(rb"[\x20-\x7e\t]{%d,}" % minimum, blob)]


def cache_records_since(since):
    version = api_version(30)
    conn = connection(60)
    conn.request("GET", f"/v{version}/system/df")
    records = json.loads(conn.getresponse().read()).get("BuildCache") or []
    # RFC 3339 in UTC on both sides; compare to the second.
    return [r for r in records if r.get("CreatedAt", "")[:19] >= since[:19]]


def prune_since(since):
    version = api_version(30)
    deleted = 0
    for _ in range(10):  # a record frees its parents only once it is gone
        ids = [r["ID"] for r in cache_records_since(since) if not r.get("InUse")]
        round_deleted = 0
        for rid in ids:
            # the engine takes one value per filter key
            q = urllib.parse.urlencode({"filters": json.dumps({"id": {rid: True}})})
            conn = connection(60)
            conn.request("POST", f"/v{version}/build/prune?{q}")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                round_deleted += len(json.loads(body).get("CachesDeleted") or [])
        deleted += round_deleted
        if not round_deleted:
            break
    print(f"docker_api_build: pruned {deleted} build-cache records created since {since}")
    return 0


def all_records():
    version = api_version(30)
    conn = connection(60)
    conn.request("GET", f"/v{version}/system/df")
    return json.loads(conn.getresponse().read()).get("BuildCache") or []


def prune_ids(ids):
    version = api_version(30)
    wanted = set(ids)
    for _ in range(10):  # a record frees its parents only once it is gone
        present = [r for r in all_records() if r["ID"] in wanted]
        removable = [r["ID"] for r in present if not r.get("InUse")]
        if not removable:
            break
        for rid in removable:
            q = urllib.parse.urlencode({"filters": json.dumps({"id": {rid: True}})})
            conn = connection(60)
            conn.request("POST", f"/v{version}/build/prune?{q}")
            conn.getresponse().read()
    for r in all_records():
        if r["ID"] in wanted:
            print(r["ID"])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record-ids", action="store_true")
    ap.add_argument("--prune-ids", nargs="*")
    ap.add_argument("--prune-since")
    ap.add_argument("--count-since", help="print how many build-cache records were created since then")
    ap.add_argument("--context")
    ap.add_argument("--tag")
    ap.add_argument("--target", default="")
    ap.add_argument("--dockerfile", default="Dockerfile")
    ap.add_argument("--build-arg", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    if args.record_ids:
        for r in all_records():
            print(r["ID"])
        return 0
    if args.prune_ids is not None:
        return prune_ids(args.prune_ids)
    if args.prune_since:
        return prune_since(args.prune_since)
    if args.count_since:
        print(len(cache_records_since(args.count_since)))
        return 0
    if not args.context or not args.tag:
        ap.error("--context and --tag are required")

    build_args = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"docker_api_build: --build-arg needs KEY=VALUE, got {item!r}")
        build_args[key] = value

    query = {
        "version": "2",  # BuildKit
        "t": args.tag,
        "dockerfile": args.dockerfile,
        "buildargs": json.dumps(build_args),
        "rm": "1",
        "forcerm": "1",
    }
    if args.target:
        query["target"] = args.target

    body = context_tar(args.context)
    version = api_version(30)
    conn = connection(args.timeout)
    conn.request("POST", f"/v{version}/build?{urllib.parse.urlencode(query)}",
                 body=body, headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    if resp.status != 200:
        print(f"docker_api_build: POST /build -> {resp.status}: "
              f"{resp.read()[:2000].decode('utf-8', 'replace')}", file=sys.stderr)
        return 1

    image_id, error, log_lines = None, None, []
    for raw in resp:
        raw = raw.strip()
        if not raw:
            continue
        try:
            msg = json.loads(raw)
        except ValueError:
            log_lines.append(raw.decode("utf-8", "replace"))
            continue
        if "error" in msg or "errorDetail" in msg:
            error = msg.get("error") or msg["errorDetail"].get("message")
        elif msg.get("id") == "moby.buildkit.trace":
            # A protobuf StatusResponse; its printable runs are the step
            # names and the build's log output, which is all we show.
            for run in printable_runs(base64.b64decode(msg.get("aux", ""))):
                if not run.startswith("sha256:") and run not in log_lines[-50:]:
                    log_lines.append(run)
        elif msg.get("id") == "moby.image.id":
            image_id = msg["aux"]["ID"]
        elif "stream" in msg:
            log_lines.append(msg["stream"].rstrip())

    if error or not image_id:
        print("docker_api_build: build failed: " + (error or "no image id reported"),
              file=sys.stderr)
        for line in log_lines[-40:]:
            print("  | " + line, file=sys.stderr)
        return 1
    print(f"docker_api_build: built {args.tag} ({image_id}) with BuildKit via the engine API")
    return 0


if __name__ == "__main__":
    sys.exit(main())
