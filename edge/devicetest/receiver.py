"""A test device that receives commands with Qpid Proton (python3-qpid-proton).

Package devicetest runs this script with /usr/bin/python3. It attaches a receiver to
SOURCE (at Proton's defaults: prefetch 10, so credit 10 topped up as messages are
handled; auto-accept turned off so that each outcome is its own), takes COUNT
messages, accepts each one except the one at index REJECT (0-based; -1: none), which
it rejects with condition shadowgw:test-refused, and closes. SASL: "none", or
"anonymous". At the end it prints one JSON line: the bodies in the order they came
(as text), the outcomes, and errors; it exits 1 when the connection or link failed or
it timed out.
"""

import argparse
import json
import sys
import time

from proton import Condition
from proton.handlers import MessagingHandler
from proton.reactor import Container


class Receiver(MessagingHandler):
    def __init__(self, args):
        super().__init__(auto_accept=False)
        self.args = args
        self.r = {"device": args.device, "bodies": [], "accepted": 0, "rejected": 0, "errors": []}
        self.start = time.monotonic()
        self.conn = None
        self.timer = None

    def on_start(self, event):
        url = "amqp://%s:%d" % (self.args.host, self.args.port)
        self.conn = event.container.connect(url, sasl_enabled=self.args.sasl != "none",
                                            allowed_mechs="ANONYMOUS" if self.args.sasl == "anonymous" else None)
        event.container.create_receiver(self.conn, self.args.source)
        self.timer = event.container.schedule(self.args.timeout, self)

    def on_timer_task(self, event):
        if len(self.r["bodies"]) < self.args.count:
            self.r["errors"].append("timed out after %ss with %d of %d" % (self.args.timeout, len(self.r["bodies"]), self.args.count))
            self.conn.close()

    def on_message(self, event):
        if len(self.r["bodies"]) >= self.args.count:
            self.release(event.delivery, delivered=False)
            return
        b = event.message.body
        self.r["bodies"].append(b.decode() if isinstance(b, (bytes, memoryview)) else str(b))
        i = len(self.r["bodies"]) - 1
        if i == self.args.reject:
            event.delivery.local.condition = Condition("shadowgw:test-refused", "%s refuses command %d" % (self.args.device, i))
            self.reject(event.delivery)
            self.r["rejected"] += 1
        else:
            self.accept(event.delivery)
            self.r["accepted"] += 1
        if len(self.r["bodies"]) == self.args.count:
            self.timer.cancel()
            event.connection.close()

    def on_transport_error(self, event):
        c = event.transport.condition
        if c and len(self.r["bodies"]) < self.args.count:
            self.r["errors"].append("transport: %s: %s" % (c.name, c.description))

    def on_link_error(self, event):
        c = event.link.remote_condition
        self.r["errors"].append("link: %s: %s" % (c.name, c.description) if c else "link error")
        self.timer.cancel()
        event.connection.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--reject", type=int, default=-1)
    p.add_argument("--device", default="proton-python")
    p.add_argument("--sasl", default="none", choices=["none", "anonymous"])
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()
    h = Receiver(args)
    Container(h).run()
    h.r["elapsed"] = time.monotonic() - h.start
    print(json.dumps(h.r))
    sys.exit(1 if h.r["errors"] else 0)


if __name__ == "__main__":
    main()
