#!/usr/bin/python3
# tundra-appliance: keeps this node's appliance files as tundrad renders
# them, runs its role's commands, drains the nodes tundrad says are
# leaving, and reports back.
#
# tundrad puts this on every node of an appliance, run by a systemd service
# that restarts it. Each round it reads the node's plan from the metadata
# service (tundra_appliance.json, with the node's metadata token from its
# config drive): the role's files rendered for this node now (a node
# joining another role, or a parameter changing, renders them anew), the
# role's reload and ready commands, and the leaving nodes this node drains.
# A 409 means the plan cannot be rendered yet (a role it reads has nodes
# without addresses): the agent waits.
#
# A file is written only when its bytes or mode differ (atomically, fsynced,
# owner set). When any changed, or the plan's generation did, the reload
# command runs; then the ready command until it exits 0. The agent reports
# ready under the generation it applied -- tundrad takes it only for the
# plan it renders now -- or the command that failed, with its output's
# tail; a failed reload is tried again a minute later. Each drain command
# runs until it exits 0; the nodes drained are reported, and tundrad
# deletes them. A report goes only when it differs from the last one taken.
#
# Usage: tundra-appliance BASE   (BASE: http://ADDRESS:PORT/openstack/latest)
import base64
import grp
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# Every path this agent writes is under ROOT: "" on a node; a temporary
# directory when tundrad's tests exercise the agent (owners are then left
# as they are).
ROOT = os.environ.get("TUNDRA_APPLIANCE_ROOT", "")
STATE = ROOT + "/var/lib/tundra/appliance.json"
TOKEN_CACHE = ROOT + "/var/lib/tundra/metadata_token"
SEED_TOKEN = ROOT + "/var/lib/cloud/seed/config_drive/openstack/latest/tundra_metadata_token"
DRIVE_TOKEN = "openstack/latest/tundra_metadata_token"
ROUND = float(os.environ.get("TUNDRA_APPLIANCE_ROUND", "5"))
# Ready checks under one generation before the node is reported failed (about 10 minutes).
READY_TRIES = 120
RETRY_AFTER = 60
TAIL = 1500


def say(msg):
    print("tundra-appliance: " + msg, flush=True)


def token():
    for p in (SEED_TOKEN, TOKEN_CACHE):
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            pass
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
            os.makedirs(os.path.dirname(TOKEN_CACHE), mode=0o700, exist_ok=True)
            with open(os.open(TOKEN_CACHE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(t + "\n")
            return t
    sys.exit("tundra-appliance: no metadata token: no config drive (LABEL=config-2) and no cloud-init seed")


class Wait(Exception):
    """tundrad cannot give this node its plan yet, or took a report for an older one."""


def call(base, name, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-Tundra-Metadata-Token": token()}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + "/" + name, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            raw = r.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        if e.code == 409:
            try:
                detail = json.loads(e.read()).get("detail", "")
            except ValueError:
                detail = ""
            raise Wait(detail)
        raise


def put(f):
    """Write one planned file when its bytes or mode differ; whether it did."""
    path = ROOT + f["path"]
    data = base64.b64decode(f["content_base64"])
    mode = int(f["mode"], 8)
    try:
        with open(path, "rb") as cur:
            same = cur.read() == data and (os.stat(path).st_mode & 0o7777) == mode
    except OSError:
        same = False
    uid = gid = -1
    if not ROOT:
        user, group = f["owner"].split(":", 1)
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
        if same:
            st = os.stat(path)
            same = (st.st_uid, st.st_gid) == (uid, gid)
    if same:
        return False
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tundra-new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def sh(cmd, timeout):
    """Run a command line; (exit status, its output's tail)."""
    try:
        p = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "no exit in %d s" % timeout
    return p.returncode, (p.stdout + p.stderr).strip()[-TAIL:]


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save(st):
    os.makedirs(os.path.dirname(STATE), mode=0o700, exist_ok=True)
    tmp = STATE + ".tundra-new"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(st, f)
    os.replace(tmp, STATE)


def step(base, st):
    """One round: apply the plan, check readiness, drain, report."""
    plan = call(base, "tundra_appliance.json")
    changed = [f["path"] for f in plan["files"] if put(f)]
    gen = plan["generation"]
    now = time.time()
    if gen != st.get("generation") or changed:
        if changed:
            say("wrote " + ", ".join(changed))
        st.update(generation=gen, ready=False, tries=0, error=None, reloaded=False)
    if st.get("error") and now - st.get("failed_at", 0) >= RETRY_AFTER:
        st.update(error=None, tries=0)
    if not st.get("error") and not st.get("reloaded"):
        if plan.get("reload"):
            rc, out = sh(plan["reload"], 900)
            if rc != 0:
                st.update(error="reload failed (exit %d): %s" % (rc, out), failed_at=now)
                say(st["error"])
        if not st.get("error"):
            st["reloaded"] = True
    if st.get("reloaded") and not st.get("ready"):
        rc, out = (0, "") if not plan.get("ready") else sh(plan["ready"], 120)
        if rc == 0:
            st["ready"] = True
            say("ready under plan " + gen)
        else:
            st["tries"] = st.get("tries", 0) + 1
            if st["tries"] >= READY_TRIES:
                st.update(error="not ready after %d checks (exit %d): %s" % (st["tries"], rc, out), failed_at=now)
                st["reloaded"] = False
                say(st["error"])
    wanted = [t["node"] for t in plan.get("drain", [])]
    drained = [n for n in st.get("drained", []) if n in wanted]
    for t in plan.get("drain", []):
        if t["node"] in drained:
            continue
        rc, out = sh(t["command"], 1800)
        if rc == 0:
            drained.append(t["node"])
            say("drained " + t["node"])
        else:
            say("draining %s failed (exit %d): %s" % (t["node"], rc, out))
    st["drained"] = drained
    report = {"generation": gen, "ready": bool(st.get("ready")), "drained": drained}
    if st.get("error"):
        report["error"] = st["error"]
    if report != st.get("reported"):
        call(base, "tundra_appliance_report", report)
        st["reported"] = report


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tundra-appliance http://ADDRESS:PORT/openstack/latest")
    base = sys.argv[1].rstrip("/")
    once = os.environ.get("TUNDRA_APPLIANCE_ONCE") == "1"
    st = load()
    while True:
        try:
            step(base, st)
        except Wait as w:
            say("waiting: " + str(w))
            st.pop("reported", None)
        except Exception as e:  # noqa: BLE001 -- the service keeps going; the next round tries again
            say("round failed: %s" % e)
        save(st)
        if once:
            return
        time.sleep(ROUND)


if __name__ == "__main__":
    main()
