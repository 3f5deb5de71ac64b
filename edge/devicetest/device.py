"""A test device: sends messages to an AMQP 1.0 address with Qpid Proton (python3-qpid-proton).

Package devicetest runs this script with /usr/bin/python3. Each message carries the
application-properties {"device": DEVICE, "seq": i}, the message-id "DEVICE:i" and one data
section of SIZE bytes (see body()). The PLAIN password comes from the environment variable
DEVICE_PASSWORD, not the command line. At the end the script prints one JSON line with what
the peer answered, and exits 1 when the connection, session or link failed.

Styles: "reactor" drives a proton.reactor.Container with a MessagingHandler and sends as
far as link credit allows; "blocking" uses proton.utils.BlockingConnection and waits for
each message's outcome before sending the next.
"""

import argparse
import json
import os
import signal
import sys
import time

from proton import Delivery, Message
from proton.handlers import MessagingHandler
from proton.reactor import AtMostOnce, Container
from proton.utils import BlockingConnection

# body() rotates this pattern by the sequence number, so that every message has different
# bytes and none is a run of one value; the Go side computes the same bytes.
PATTERN_LEN = 251
PATTERN = bytes(range(PATTERN_LEN))


def body(seq, size):
    rep = PATTERN * (size // PATTERN_LEN + 2)
    start = seq % PATTERN_LEN
    return rep[start:start + size]


def message(args, seq):
    return Message(
        id="%s:%d" % (args.device, seq),
        properties={"device": args.device, "seq": seq},
        body=body(seq, args.size),
        inferred=True,  # bytes go into a data section, not an amqp-value
    )


class Result:
    def __init__(self, style, device):
        self.style = style
        self.device = device
        self.sent = 0
        self.accepted = 0
        self.rejected = 0
        self.released = 0
        self.modified = 0
        self.settled_sent = 0
        self.conditions = []  # error conditions of rejected deliveries
        self.errors = []  # connection, session and link errors

    def outcome(self, delivery):
        state = delivery.remote_state
        if state == Delivery.ACCEPTED:
            self.accepted += 1
        elif state == Delivery.REJECTED:
            self.rejected += 1
            cond = delivery.remote.condition
            self.conditions.append(describe(cond) if cond else "rejected")
        elif state == Delivery.RELEASED:
            self.released += 1
        elif state == Delivery.MODIFIED:
            self.modified += 1

    def answered(self):
        return self.accepted + self.rejected + self.released + self.modified

    def json(self, elapsed):
        return json.dumps({
            "style": self.style,
            "device": self.device,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "released": self.released,
            "modified": self.modified,
            "settled_sent": self.settled_sent,
            "conditions": self.conditions,
            "errors": self.errors,
            "elapsed": round(elapsed, 3),
        })


def describe(cond):
    if cond is None:
        return "unknown"
    if cond.description:
        return "%s: %s" % (cond.name, cond.description)
    return str(cond.name)


def connect_options(args):
    """Keyword arguments for Container.connect and BlockingConnection."""
    opts = {"reconnect": False}
    if args.sasl == "none":
        opts["sasl_enabled"] = False
    elif args.sasl == "anonymous":
        opts["allowed_mechs"] = "ANONYMOUS"
    elif args.sasl == "plain":
        opts["allowed_mechs"] = "PLAIN"
        opts["user"] = args.user
        opts["password"] = os.environ.get("DEVICE_PASSWORD", "")
        opts["allow_insecure_mechs"] = True  # PLAIN without TLS: loopback tests only
    return opts


class Sender(MessagingHandler):
    def __init__(self, args, result):
        super(Sender, self).__init__(auto_settle=True)
        self.args = args
        self.result = result
        self.conn = None
        self.closing = False  # we closed the connection: the end is expected

    def on_start(self, event):
        container = event.container
        self.conn = container.connect(self.args.url, **connect_options(self.args))
        options = [AtMostOnce()] if self.args.settled else None
        container.create_sender(self.conn, self.args.address, options=options)

    def on_sendable(self, event):
        sender = event.sender
        while sender.credit > 0 and self.result.sent < self.args.count:
            sender.send(message(self.args, self.result.sent))
            self.result.sent += 1
            if self.args.settled:
                self.result.settled_sent += 1
        if self.args.settled and self.result.sent == self.args.count:
            self.finish()

    def on_accepted(self, event):
        self.answer(event)

    def on_rejected(self, event):
        self.answer(event)

    def on_released(self, event):  # released and modified
        self.answer(event)

    def answer(self, event):
        self.result.outcome(event.delivery)
        if self.result.answered() == self.args.count:
            self.finish()

    def finish(self):
        self.closing = True
        self.conn.close()

    def fail(self, text):
        self.result.errors.append(text)
        self.finish()

    def on_transport_error(self, event):
        # Refused authentication, a refused or broken socket, a framing error.
        self.fail("transport: " + describe(event.transport.condition))

    def on_connection_error(self, event):
        self.fail("connection: " + describe(event.connection.remote_condition))

    def on_session_error(self, event):
        self.fail("session: " + describe(event.session.remote_condition))

    def on_link_error(self, event):
        self.fail("link: " + describe(event.link.remote_condition))

    def on_disconnected(self, event):
        # With a condition, on_transport_error reports it.
        if not self.closing and not event.transport.condition:
            self.fail("disconnected before the end")


def run_reactor(args, result):
    container = Container(Sender(args, result))
    container.container_id = args.device
    container.run()


def run_blocking(args, result):
    container = Container()
    container.container_id = args.device
    try:
        conn = BlockingConnection(args.url, timeout=args.timeout, container=container,
                                  **connect_options(args))
    except Exception as e:  # ConnectionException, Timeout, socket errors
        result.errors.append("connect: %s" % e)
        return
    try:
        options = [AtMostOnce()] if args.settled else None
        sender = conn.create_sender(args.address, options=options)
        for seq in range(args.count):
            delivery = sender.send(message(args, seq), timeout=args.timeout, error_states=[])
            result.sent += 1
            if args.settled:
                result.settled_sent += 1
            else:
                result.outcome(delivery)
        if args.settled:
            # Pre-settled transfers have no answer; a round trip (the link's detach) makes
            # sure they reached the peer before the connection closes.
            sender.close()
    except Exception as e:  # LinkDetached, ConnectionClosed, ConnectionException, Timeout
        result.errors.append("%s: %s" % (type(e).__name__, e))
    finally:
        try:
            conn.close()
        except Exception as e:
            if not result.errors:
                result.errors.append("close: %s" % e)


class DeviceTimeout(BaseException):  # not caught by the handlers for Exception
    pass


def alarm(signum, frame):
    raise DeviceTimeout()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="host:port of the AMQP server")
    p.add_argument("--address", default="telemetry", help="target address")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--size", type=int, default=100, help="body size in bytes")
    p.add_argument("--settled", action="store_true", help="send pre-settled (at most once)")
    p.add_argument("--style", choices=["reactor", "blocking"], default="reactor")
    p.add_argument("--sasl", choices=["none", "anonymous", "plain"], default="none")
    p.add_argument("--user", default="")
    p.add_argument("--device", default="device", help="device id, also the container-id")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds")
    args = p.parse_args()

    result = Result(args.style, args.device)
    start = time.monotonic()
    # The whole run is bounded by an alarm rather than a reactor timer: a cancelled
    # Container timer keeps the reactor waiting for its select time-out (about 3 s).
    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        if args.style == "reactor":
            run_reactor(args, result)
        else:
            run_blocking(args, result)
    except DeviceTimeout:
        result.errors.append("timed out after %gs: sent %d, answered %d" %
                             (args.timeout, result.sent, result.answered()))
    except Exception as e:
        result.errors.append("%s: %s" % (type(e).__name__, e))
    signal.setitimer(signal.ITIMER_REAL, 0)
    print(result.json(time.monotonic() - start), flush=True)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
