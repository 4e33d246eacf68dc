#!/usr/bin/python3
# tundra-mounts: keeps this node's share mounts as tundrad lists them.
#
# tundrad puts this on every node it deploys (with a systemd timer that runs
# it) when its site serves the metadata service. Each run reads the node's
# mounts from the metadata service -- with the node's metadata token from
# its config drive -- compares them with the mounts applied last
# (/var/lib/tundra/mounts.json, written first from the config drive), and
# changes only what differs: a mount gone or changed is unmounted and its
# fstab line and files removed; a new one gets its files (keys 0600), its
# fstab line, its directory, and is mounted. A mount that fails is left out
# of what was applied, so the next run tries it again; one that died (a
# FUSE client killed) is mounted again.
#
# Under systemd a mount is started as its mount unit, so its FUSE client
# lives in that unit, not in this short-lived service (whose processes
# systemd ends when it exits).
#
# Usage: tundra-mounts URL   (URL: .../openstack/latest/tundra_mounts.json)
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

STATE = "/var/lib/tundra/mounts.json"
TOKEN_CACHE = "/var/lib/tundra/metadata_token"
SEED_TOKEN = "/var/lib/cloud/seed/config_drive/openstack/latest/tundra_metadata_token"
DRIVE_TOKEN = "openstack/latest/tundra_metadata_token"


def say(msg):
    print("tundra-mounts: " + msg, flush=True)


def save(path, content, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def token():
    for p in (SEED_TOKEN, TOKEN_CACHE):
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            pass
    # The config drive itself (LABEL=config-2), mounted read-only for a moment.
    found = subprocess.run(["blkid", "-t", "LABEL=config-2", "-o", "device"], capture_output=True, text=True)
    for dev in found.stdout.split():
        with tempfile.TemporaryDirectory() as d:
            if subprocess.run(["mount", "-o", "ro", dev, d]).returncode != 0:
                continue
            try:
                with open(os.path.join(d, DRIVE_TOKEN)) as f:
                    t = f.read().strip()
            finally:
                subprocess.run(["umount", d])
            save(TOKEN_CACHE, t + "\n", 0o600)
            return t
    sys.exit("tundra-mounts: no metadata token: no config drive (LABEL=config-2) and no cloud-init seed")


def fetch(url):
    req = urllib.request.Request(url, headers={"X-Tundra-Metadata-Token": token()})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.load(r)["mounts"]


def by_point(mounts):
    return {m["mount_point"]: m for m in mounts}


def fstab_lines():
    with open("/etc/fstab") as f:
        return f.read().splitlines()


def systemd():
    return os.path.isdir("/run/systemd/system")


def unit_of(point):
    r = subprocess.run(["systemd-escape", "--path", "--suffix=mount", point], capture_output=True, text=True)
    return r.stdout.strip()


def mounted(point):
    """Listed in /proc/mounts and answering (a dead FUSE client does not; a
    hard NFS mount whose server is gone never answers: give it 10 s)."""
    with open("/proc/mounts") as f:
        listed = any(l.split()[1] == point for l in f if len(l.split()) > 1)
    if not listed:
        return False
    try:
        return subprocess.run(["stat", "-t", point], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def unmount(point):
    if systemd():
        subprocess.run(["systemctl", "stop", unit_of(point)], stderr=subprocess.DEVNULL)
    subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)


def mount(point):
    """(fstab already says how, and systemd has re-read it.)"""
    if systemd():
        return subprocess.run(["systemctl", "start", unit_of(point)], capture_output=True, text=True)
    return subprocess.run(["mount", point], capture_output=True, text=True)


def point_of(line):
    fields = line.split()
    if len(fields) >= 2 and not line.lstrip().startswith("#"):
        return fields[1]
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tundra-mounts URL")
    try:
        want = by_point(fetch(sys.argv[1]))
    except Exception as e:  # the service away: try again next time, change nothing
        sys.exit("tundra-mounts: could not read the mounts from the metadata service: %s" % e)
    try:
        with open(STATE) as f:
            have = by_point(json.load(f)["mounts"])
    except (OSError, ValueError, KeyError):
        have = {}
    gone = [p for p in have if have[p] != want.get(p)]
    new = [p for p in want if want[p] != have.get(p) or not mounted(p)]
    if not gone and not new:
        return
    kept_files = {f["path"] for m in want.values() for f in m.get("files", [])}
    for p in gone:
        unmount(p)
        for f in have[p].get("files", []):
            if f["path"] not in kept_files:
                try:
                    os.remove(f["path"])
                except OSError:
                    pass
        say("unmounted " + p)
    lines = [l for l in fstab_lines() if point_of(l) not in set(gone) | set(new)]
    applied = {p: m for p, m in have.items() if p not in gone}
    for p in new:
        for f in want[p].get("files", []):
            save(f["path"], f["content"], int(f["mode"], 8))
        lines.append(want[p]["fstab"])
    save("/etc/fstab", "\n".join(lines) + "\n", 0o644)
    if systemd():
        subprocess.run(["systemctl", "daemon-reload"])
    for p in new:
        if p in have and have[p] == want[p]:
            say("%s is not answering; mounting it again" % p)
            unmount(p)
        os.makedirs(p, exist_ok=True)
        r = mount(p)
        if r.returncode == 0:
            applied[p] = want[p]
            say("mounted " + p)
        else:
            # Kept as failed: its fstab line and files are written, so the
            # next run either tries it again or, if it is no longer wanted,
            # takes them away.
            applied[p] = dict(want[p], failed=True)
            say("mounting %s failed (tried again next run): %s" % (p, (r.stderr or r.stdout).strip()))
    save(STATE, json.dumps({"mounts": list(applied.values())}), 0o600)


main()
