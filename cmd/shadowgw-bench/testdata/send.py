"""A reference sender for TestRate: Qpid Proton (python3-qpid-proton) over TLS with SASL PLAIN.

It sends COUNT unsettled messages to ADDRESS as the gateway forwards the messages of
Debian's Proton C send example: message-id the ulong n, an amqp-value map
{"sequence": int n}, no header; with --annotate also the message annotation
x-opt-shadowgw-source = "send", as the gateway adds it by default. So the broker's CPU
per message for one Python Proton sender, with and without the annotation, shows what
the annotation itself costs a broker, apart from who sends it. The password comes from
the environment variable SEND_PASSWORD. It prints "COUNT accepted" and exits 0 once
every message is accepted; any other outcome or error exits 1.
"""

import argparse
import os
import sys

from proton import Message, SSLDomain, int32, symbol, ulong
from proton.handlers import MessagingHandler
from proton.reactor import Container


class Send(MessagingHandler):
    def __init__(self, args):
        super().__init__(auto_settle=True)
        self.args = args
        self.sent = 0
        self.accepted = 0
        self.failed = None
        self.annotations = {symbol("x-opt-shadowgw-source"): "send"} if args.annotate else None

    def on_start(self, event):
        ssl = SSLDomain(SSLDomain.MODE_CLIENT)
        ssl.set_trusted_ca_db(self.args.ca)
        ssl.set_peer_authentication(SSLDomain.VERIFY_PEER)
        conn = event.container.connect(self.args.url, ssl_domain=ssl, user=self.args.user,
                                       password=os.environ["SEND_PASSWORD"], allowed_mechs="PLAIN")
        event.container.create_sender(conn, self.args.address)

    def on_sendable(self, event):
        while event.sender.credit and self.sent < self.args.count:
            self.sent += 1
            m = Message(id=ulong(self.sent), body={"sequence": int32(self.sent)})
            if self.annotations:
                m.annotations = self.annotations
            event.sender.send(m)

    def on_accepted(self, event):
        self.accepted += 1
        if self.accepted == self.args.count:
            event.connection.close()

    def on_rejected(self, event):
        self.fail(event, "rejected")

    def on_released(self, event):
        self.fail(event, "released")

    def on_transport_error(self, event):
        self.fail(event, "transport error: %s" % event.transport.condition)

    def on_link_error(self, event):
        self.fail(event, "link error: %s" % event.link.remote_condition)

    def fail(self, event, why):
        self.failed = why
        event.connection.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")  # amqps://host:port
    p.add_argument("address")
    p.add_argument("count", type=int)
    p.add_argument("--user", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--annotate", action="store_true")
    args = p.parse_args()
    s = Send(args)
    Container(s).run()
    if s.failed or s.accepted != args.count:
        print("%d of %d accepted: %s" % (s.accepted, args.count, s.failed), file=sys.stderr)
        sys.exit(1)
    print("%d accepted" % s.accepted)


main()
