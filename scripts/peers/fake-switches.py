"""Emulated switches for tests and benchmarks, on fake-switches' SSH service.

    fake-switches.py --user USER --password-env VAR MODEL:NAME[:PORTS] ...

Each MODEL:NAME (e.g. cisco_generic:leaf1) is a switch of that fake-switches
model (with the model's ports, or PORTS: comma-separated names) listening on
127.0.0.1 (a free port; the stock CLI binds every
interface). USER logs in with the password from the environment variable
VAR, which is also the enable password (the stock CLI passes it as bytes, so
`enable` never succeeds on Python 3). Prints one JSON line once all listen:
{"NAME": PORT, ...}; with --count-sessions, then one line per SSH
connection accepted. With --session-log FILE, every SSH connection's open
and close is appended to FILE as a JSON line
({"switch", "event": "open"|"close", "peer", "at"}), so a test can see
whether two sessions on one switch were ever open at once. With
--fresh-host-key the switches present a host key made at start instead of
the one fake-switches ships (a switch whose key changed). Runs until
killed. All switches share one reactor.
"""

import argparse
import json
import os
import sys
import time

from fake_switches.switch_configuration import Port
from fake_switches.switch_factory import SwitchFactory
from fake_switches.transports.ssh_service import SwitchSshService
from twisted.internet import reactor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-env", required=True)
    ap.add_argument("--count-sessions", action="store_true",
                    help='print {"session": NAME} for every SSH connection a switch accepts')
    ap.add_argument("--session-log", metavar="FILE",
                    help="append each SSH connection's open and close to FILE as JSON lines")
    ap.add_argument("--fresh-host-key", action="store_true",
                    help="present a new RSA host key instead of fake-switches' fixed one")
    ap.add_argument("switches", nargs="+", metavar="MODEL:NAME[:PORTS]")
    args = ap.parse_args()
    if args.fresh_host_key:
        fresh_host_key()
    log = open(args.session_log, "a", buffering=1) if args.session_log else None
    password = os.environ[args.password_env]
    factory = SwitchFactory()
    ports = {}
    for spec in args.switches:
        model, _, rest = spec.partition(":")
        name, _, port_names = rest.partition(":")
        own = [Port(p) for p in port_names.split(",")] if port_names else None
        core = factory.get(model, hostname=name or model, password=password, ports=own)
        service = SwitchSshService(
            ip="127.0.0.1", port=0, switch_core=core, users={args.user: password.encode()}
        )
        listening = service.hook_to_reactor(reactor)
        ports[name or model] = listening.getHost().port
        if args.count_sessions:
            build = listening.factory.buildProtocol

            def counted(addr, build=build, name=name or model):
                print(json.dumps({"session": name}), flush=True)
                return build(addr)

            listening.factory.buildProtocol = counted
        if log:
            build = listening.factory.buildProtocol

            def logged(addr, build=build, name=name or model):
                peer = f"{addr.host}:{addr.port}"

                def note(event):
                    log.write(json.dumps({"switch": name, "event": event, "peer": peer, "at": time.time()}) + "\n")

                note("open")
                protocol = build(addr)
                lost = protocol.connectionLost

                def connection_lost(reason, lost=lost):
                    note("close")
                    return lost(reason)

                protocol.connectionLost = connection_lost
                return protocol

            listening.factory.buildProtocol = logged
    print(json.dumps(ports), flush=True)
    reactor.run()


def fresh_host_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    from fake_switches.transports import ssh_service
    from twisted.conch.ssh import keys

    key = keys.Key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    pair = (key.public().toString("openssh").decode(), key.toString("openssh").decode())
    ssh_service.getRSAKeys = lambda: pair


if __name__ == "__main__":
    sys.exit(main())
