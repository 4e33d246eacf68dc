"""An IPMI 2.0 (lanplus) BMC for tests and the lab, on pyghmi's BMC server.

    ipmi-bmc.py --port PORT --user USER --password-env VAR [--state FILE]
    ipmi-bmc.py --many FILE --user USER --password-env VAR

--many serves several BMCs from one process: FILE is a JSON list of
{"port": PORT, "state": STATE_FILE} (the lab runs one per IPMI machine).

Listens on 127.0.0.1 only (pyghmi's stock fakebmc binds every interface).
The password comes from the environment, never the command line. With
--state, power and boot device are kept in FILE (JSON), so a restarted BMC
remembers them and a lab "firmware" can watch power-ons: "boots" counts
every power-on, reset and cycle. Prints "ready" on
stdout once listening.
"""

import argparse
import json
import os
import sys
import traceback

import pyghmi.ipmi.bmc as bmc
from pyghmi.ipmi.private import serversession as _serversession
from pyghmi.ipmi.private import session as _session


def _io_sendto(sock, packet, sockaddr):
    """pyghmi's sender switches the socket to blocking mode, while its I/O
    thread reads the same socket after switching it to non-blocking: when
    the two interleave, the I/O thread blocks in recvfrom on an empty
    socket and every BMC of the process stops answering (seen under the
    chaos suite's load). Send without touching the mode; a datagram the
    kernel will not take now is lost, as UDP may lose it anyway."""
    try:
        sock.sendto(packet, sockaddr)
    except OSError:
        pass


_session._io_sendto = _io_sendto

# pyghmi drops an authenticated message that reaches a session before its
# keys exist ("if self.k1 is None"), but its server session only sets k1
# once RAKP 3 arrives, so the check itself raised AttributeError and killed
# every BMC of the process: one datagram held up by the network and
# delivered after its client had opened a new session was enough (seen under
# the chaos suite's BMC faults). Until then, k1 is None, as pyghmi means.
_serversession.ServerSession.k1 = None


class Bmc(bmc.Bmc):
    def __init__(self, authdata, port, state_file):
        super().__init__(authdata, port, address="127.0.0.1")
        self.state_file = state_file
        self.state = {"power": "off", "bootdev": "default", "boots": 0}
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                self.state.update(json.load(f))

    def _save(self):
        if self.state_file:
            tmp = self.state_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.state, f)
            os.replace(tmp, self.state_file)

    def get_boot_device(self):
        return self.state["bootdev"]

    def set_boot_device(self, bootdevice):
        self.state["bootdev"] = bootdevice
        self._save()

    def cold_reset(self):
        pass

    def get_power_state(self):
        return self.state["power"]

    def _power(self, s):
        self.state["power"] = s
        self._save()

    def power_off(self):
        self._power("off")

    def _boot(self):
        self.state["boots"] = self.state.get("boots", 0) + 1
        self._power("on")

    def power_on(self):
        if self.state["power"] != "on":
            self._boot()

    def power_shutdown(self):
        self._power("off")

    def power_reset(self):
        self._boot()

    def power_cycle(self):
        self._boot()

    def is_active(self):
        return self.state["power"] == "on"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--many")
    p.add_argument("--user", default="admin")
    p.add_argument("--password-env", default="BMC_PASSWORD")
    p.add_argument("--state")
    a = p.parse_args()
    auth = {a.user: os.environ[a.password_env]}
    if a.many:
        with open(a.many) as f:
            bmcs = [Bmc(auth, b["port"], b["state"]) for b in json.load(f)]
    elif a.port:
        bmcs = [Bmc(auth, a.port, a.state)]
    else:
        p.error("give --port or --many")
    print("ready", flush=True)
    # One loop serves every BMC's socket. A datagram pyghmi cannot place
    # (one from an earlier session, out of order) is dropped, as a real BMC
    # drops it, and the loop goes on: the BMCs must not die of their network.
    while True:
        try:
            bmcs[0].listen()
        except Exception:
            traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
