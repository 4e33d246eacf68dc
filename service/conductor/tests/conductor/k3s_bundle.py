# The cluster agent's k3s bundle install, against a real HTTP server the way
# the metadata service serves it (the node's token required, ranges
# honoured). Run by clusters::the_agent_installs_a_k3s_bundle_by_name_verified_and_resumed
# with: python3 k3s_bundle.py ROOT AGENT_SCRIPT
import hashlib
import http.server
import importlib.util
import io
import os
import sys
import tarfile
import threading

root, agent_path = sys.argv[1], sys.argv[2]
os.environ["TUNDRA_CLUSTER_ROOT"] = root
spec = importlib.util.spec_from_file_location("agent", agent_path)
agent = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agent)

# The node's metadata token, as its config drive gives it.
os.makedirs(os.path.dirname(agent.SEED_TOKEN))
with open(agent.SEED_TOKEN, "w") as f:
    f.write("tundra-mdt-secret\n")

# A bundle: the binary and the images, beside members that must not land
# where their names point.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    def add(name, data, kind=tarfile.REGTYPE, link=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, link, len(data)
        t.addfile(info, io.BytesIO(data))
    add("bin/k3s", b"", tarfile.SYMTYPE, "/etc/passwd")
    add("k3s-v1.31.4/k3s", b"#!/bin/sh\necho k3s\n")
    add("k3s-v1.31.4/k3s-airgap-images-amd64.tar.zst", b"the images")
    add("../../escape", b"out")
    add("/etc/evil", b"out")
    add("README.md", b"read me")
bundle = buf.getvalue()
served = [b""]
asked = []
ignore_ranges = [False]


class Metadata(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        asked.append((self.path, self.headers.get("Range")))
        if self.headers.get("X-Tundra-Metadata-Token") != "tundra-mdt-secret":
            self.send_response(401)
            self.end_headers()
            return
        body, status = served[0], 200
        rng = self.headers.get("Range")
        if rng and not ignore_ranges[0]:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            body, status = body[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d/openstack/latest" % srv.server_port
ref = {"file": "tundra_cluster_bundle", "sha256": hashlib.sha256(bundle).hexdigest(), "size_bytes": len(bundle)}

# Bytes that do not hash right: refused, nothing installed, nothing kept.
served[0] = b"x" * len(bundle)
try:
    agent.install_bundle(base, ref)
    raise SystemExit("a bundle with the wrong sha256 was installed")
except agent.BundleMismatch as e:
    assert "hashes to" in str(e), e
assert not os.path.exists(agent.BUNDLE_PART) and not os.path.exists(agent.K3S_BIN)
assert asked[-1] == ("/openstack/latest/tundra_cluster_bundle", None), asked

# A download cut off part way resumes from where it stopped.
served[0] = bundle
with open(agent.BUNDLE_PART, "wb") as f:
    f.write(bundle[:100])
agent.install_bundle(base, ref)
assert asked[-1][1] == "bytes=100-", asked
with open(agent.K3S_BIN, "rb") as f:
    assert f.read() == b"#!/bin/sh\necho k3s\n"
assert os.stat(agent.K3S_BIN).st_mode & 0o777 == 0o755
with open(os.path.join(agent.K3S_IMAGES, "k3s-airgap-images-amd64.tar.zst"), "rb") as f:
    assert f.read() == b"the images"
# Nothing else was written, inside the root or out of it.
written = sorted(os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(root) for n in ns)
assert written == [
    "usr/local/bin/k3s",
    "var/lib/cloud/seed/config_drive/openstack/latest/tundra_metadata_token",
    "var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst",
    "var/lib/tundra/k3s-bundle.sha256",
], written
assert not os.path.exists(os.path.join(root, "..", "escape"))

# A server that ignores the range and sends it all: taken whole, not appended.
os.unlink(agent.BUNDLE_DONE)
with open(agent.BUNDLE_PART, "wb") as f:
    f.write(bundle[:100])
ignore_ranges[0] = True
agent.install_bundle(base, ref)
assert asked[-1][1] == "bytes=100-", asked
with open(agent.K3S_BIN, "rb") as f:
    assert f.read() == b"#!/bin/sh\necho k3s\n"
ignore_ranges[0] = False

# Installed once: not fetched again.
n = len(asked)
agent.install_bundle(base, ref)
assert len(asked) == n, asked

# A bundle without the binary says what the site must register.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    info = tarfile.TarInfo("README.md")
    info.size = 2
    t.addfile(info, io.BytesIO(b"hi"))
served[0] = buf.getvalue()
ref = {"file": "tundra_cluster_bundle", "sha256": hashlib.sha256(served[0]).hexdigest(), "size_bytes": len(served[0])}
try:
    agent.install_bundle(base, ref)
    raise SystemExit("a bundle without k3s was taken")
except RuntimeError as e:
    assert "holds no file named k3s" in str(e), e
print("ok")
