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
# tail (a file that cannot be written is reported the same way); a failed
# reload is tried again a minute later. Readiness is reported before the
# drains run. Each drain command runs until it exits 0; the nodes drained
# are reported, and tundrad deletes them. A report goes when it differs from
# the last one taken, and again every minute (tundrad may have moved on).
#
# `tundra-appliance rebuild` asks tundrad to rebuild this node (deploy it
# again with the image its role's parameters name now, keeping its name,
# address and mounts) -- what a scheduler's reboot hook runs once it has
# drained the node (Slurm's RebootProgram). The running agent keeps the
# metadata service's address in its state for it.
#
# Usage: tundra-appliance BASE   (BASE: http://ADDRESS:PORT/openstack/latest)
#        tundra-appliance rebuild
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
RESEND_AFTER = 60
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
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o755, exist_ok=True)
    # A temporary file of our own (never one someone planted, never through
    # a link), its owner and mode set on the descriptor, then renamed over
    # the path (a link there is replaced, not followed).
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tundra-")
    try:
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchown(out.fileno(), uid, gid)
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def sh(cmd, timeout):
    """Run a command line in a session of its own; (exit status, its
    output's tail). Output goes to a file, not a pipe, so a daemon the
    command leaves running does not hold the agent up."""
    with tempfile.TemporaryFile() as out:
        try:
            p = subprocess.run(["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=timeout, start_new_session=True)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = 124
        out.seek(0)
        text = out.read().decode("utf-8", errors="replace").strip()[-TAIL:]
    return rc, text if rc != 124 or text else "no exit in %d s" % timeout


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
    changed, broken = [], None
    for f in plan["files"]:
        try:
            if put(f):
                changed.append(f["path"])
        except (OSError, KeyError, ValueError) as e:
            broken = "writing %s failed: %s" % (f["path"], e)
            break
    gen = plan["generation"]
    now = time.time()
    if gen != st.get("generation") or changed:
        if changed:
            say("wrote " + ", ".join(changed))
        st.update(generation=gen, ready=False, tries=0, error=None, reloaded=False)
    if broken:
        if broken != st.get("error"):
            say(broken)
        st.update(error=broken, failed_at=now, reloaded=False, ready=False)
    if st.get("error") and not broken and now - st.get("failed_at", 0) >= RETRY_AFTER:
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
    send(base, st, gen, drained)
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
    send(base, st, gen, drained)


def send(base, st, gen, drained):
    """Report when the report differs from the last one taken, or a minute passed."""
    report = {"generation": gen, "ready": bool(st.get("ready")), "drained": list(drained)}
    if st.get("error"):
        report["error"] = st["error"]
    if report != st.get("reported") or time.time() - st.get("sent_at", 0) >= RESEND_AFTER:
        call(base, "tundra_appliance_report", report)
        st["reported"] = report
        st["sent_at"] = time.time()


def rebuild():
    """Ask for this node's rebuild; exit 0 once tundrad took it, 1 with why not."""
    base = load().get("base")
    if not base or not base.startswith(("http://", "https://")):
        sys.exit("tundra-appliance: no metadata service known yet: the agent has not run on this node")
    try:
        call(base, "tundra_rebuild", {})
    except Wait as w:
        sys.exit("tundra-appliance: tundrad will not rebuild this node now: %s" % w)
    except urllib.error.HTTPError as e:
        sys.exit("tundra-appliance: asking for a rebuild failed: HTTP %d %s" % (e.code, e.read()[:500].decode(errors="replace")))
    except (urllib.error.URLError, OSError) as e:
        sys.exit("tundra-appliance: the metadata service at %s did not answer: %s" % (base, e))
    say("rebuild asked: tundrad deploys this node again (its disk is rewritten)")


def main():
    if sys.argv[1:] == ["rebuild"]:
        return rebuild()
    if len(sys.argv) != 2 or not sys.argv[1].startswith(("http://", "https://")):
        sys.exit("usage: tundra-appliance http://ADDRESS:PORT/openstack/latest | tundra-appliance rebuild")
    base = sys.argv[1].rstrip("/")
    once = os.environ.get("TUNDRA_APPLIANCE_ONCE") == "1"
    st = load()
    st["base"] = base
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
