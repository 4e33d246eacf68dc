# What a test user does through the hub's REST API (the hub's address, not
# loopback): log in, get a token, start a server, run code in a kernel
# over its channels (and then CELL_FILE's code, when given), stop the
# server. Prints one line per step.
#
# Usage: jupyter-client.py HUB_URL USER [CELL_FILE]
import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

HUB, USER = sys.argv[1], sys.argv[2]
CELL = open(sys.argv[3]).read() if len(sys.argv) > 3 else None
PASSWORD = subprocess.check_output(["sudo", "cat", "/etc/jupyterhub/secrets/dummy_password"], text=True).strip()
CODE = """
import os, pwd, socket
p = os.path.expanduser("~/from-the-kernel.txt")
with open(p, "w") as f:
    f.write("written by the kernel\\n")
print(sum(range(10**7)), pwd.getpwuid(os.getuid()).pw_name, socket.gethostname(), os.getcwd(), p)
"""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def login(password, user=USER):
    jar = urllib.request.HTTPCookieProcessor()
    opener = urllib.request.build_opener(jar, NoRedirect)
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with opener.open(HUB + "/hub/login", data=form, timeout=60) as r:
            return r.status, sorted(c.name for c in jar.cookiejar)
    except urllib.error.HTTPError as e:
        return e.code, sorted(c.name for c in jar.cookiejar)


def call(method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(HUB + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


SESSION = uuid.uuid4().hex


async def request(conn, msg_type, content):
    msg_id = uuid.uuid4().hex
    await conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": USER, "session": SESSION,
                   "msg_type": msg_type, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": content,
    }))
    return msg_id


async def iopub_live(conn):
    """Until the kernel's iopub reaches us (a fresh kernel publishes before
    the server subscribes, and what it publishes then is lost), ask for its
    info and wait for the status it publishes about that request."""
    deadline = time.time() + 120
    while time.time() < deadline:
        asked = await request(conn, "kernel_info_request", {})
        try:
            while True:
                raw = await asyncio.wait_for(conn.read_message(), 3)
                if raw is None:
                    raise SystemExit("the kernel's channels closed")
                m = json.loads(raw)
                if m.get("channel") == "iopub" and m.get("parent_header", {}).get("msg_id") == asked:
                    return
        except asyncio.TimeoutError:
            continue
    raise SystemExit("the kernel's iopub never answered")


async def execute(kernel, token, code):
    url = HUB.replace("http://", "ws://") + f"/user/{USER}/api/kernels/{kernel}/channels?session_id={SESSION}"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    await iopub_live(conn)
    msg_id = await request(conn, "execute_request", {
        "code": code, "silent": False, "store_history": False,
        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
    })
    # The reply (shell) and the kernel going idle (iopub) come on different
    # channels, in either order: done when both have.
    out, reply, idle = "", None, False
    while not (reply and idle):
        raw = await asyncio.wait_for(conn.read_message(), 300)
        if raw is None:
            raise SystemExit(f"the kernel's channels closed; so far {out!r}")
        m = json.loads(raw)
        if m.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = m["msg_type"]
        if kind == "stream":
            out += m["content"]["text"]
        elif kind == "error":
            raise SystemExit("the kernel failed: " + "\n".join(m["content"]["traceback"]))
        elif kind == "execute_reply":
            reply = m["content"]["status"]
        elif kind == "status" and m["content"]["execution_state"] == "idle":
            idle = True
    conn.close()
    return reply, out


# An account that may use sudo (the image's default user) logs in, but
# gets no server: its notebook would be a root shell.
login(PASSWORD, "debian")
code, t = call("POST", "/hub/api/users/debian/tokens", body={"auth": {"username": "debian", "password": PASSWORD}})
assert code == 201, (code, t)
code, _ = call("POST", "/hub/api/users/debian/server", t["token"])
print("sudoer-server", code)
status, cookies = login(PASSWORD + "-wrong")
print("wrong-login", status, ",".join(cookies) or "-")
status, cookies = login(PASSWORD)
print("login", status, ",".join(cookies))
code, _ = call("POST", f"/hub/api/users/{USER}/tokens", body={"auth": {"username": USER, "password": PASSWORD + "-wrong"}})
print("wrong-token", code)
code, t = call("POST", f"/hub/api/users/{USER}/tokens", body={"auth": {"username": USER, "password": PASSWORD}})
assert code in (200, 201), (code, t)
token = t["token"]
print("token", code)
code, r = call("POST", f"/hub/api/users/{USER}/server", token)
assert code in (201, 202), (code, r)
deadline = time.time() + 180
while True:
    code, u = call("GET", f"/hub/api/users/{USER}", token)
    server = (u.get("servers") or {}).get("") if isinstance(u, dict) else None
    if server and server.get("ready"):
        break
    assert time.time() < deadline, f"the server is not ready: {u}"
    time.sleep(2)
print("server", server["url"])
code, k = call("POST", f"/user/{USER}/api/kernels", token, {"name": "python3"})
assert code == 201, (code, k)
print("kernel", k["name"])
reply, out = asyncio.run(execute(k["id"], token, CODE))
print("executed", reply)
print("output", out.strip())
if CELL:
    reply, out = asyncio.run(execute(k["id"], token, CELL))
    print("cell", reply)
    for line in out.strip().splitlines():
        print("cell-output", line)
running = subprocess.run(["pgrep", "-u", USER, "-f", "jupyterhub-singleuser"], capture_output=True, text=True)
print("servers-running-as-user", len(running.stdout.split()))
code, _ = call("DELETE", f"/hub/api/users/{USER}/server", token)
assert code in (202, 204), code
deadline = time.time() + 120
while True:
    _, u = call("GET", f"/hub/api/users/{USER}", token)
    local = subprocess.run(["pgrep", "-u", USER, "-f", "jupyterhub-singleuser"], capture_output=True).returncode == 0
    if not local and isinstance(u, dict) and not (u.get("servers") or {}):
        break
    assert time.time() < deadline, f"the server is still running: {u}"
    time.sleep(1)
print("stopped", code)
