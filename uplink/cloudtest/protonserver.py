# protonserver.py is the AMQP 1.0 test server behind cloudtest.StartProton: a Qpid
# Proton (python3-qpid-proton) Container listening with TLS and SASL ANONYMOUS on
# 127.0.0.1:PORT. It accepts every message unless told otherwise:
#
#   application property "x-outcome" (string) chooses the answer for the first
#   "x-outcome-times" (int, default 1) deliveries of a message-id:
#     accept, reject, release, modified-failed, modified-undeliverable (both flags;
#     every modified outcome carries the message-annotation x-opt-cloud-attempt = n,
#     the number of this delivery of the message-id),
#     detach-link (ends the link with amqp:internal-error),
#     drop-connection (closes the connection with amqp:connection:forced),
#     none (never settles),
#     delay-accept (accepts DELAY_ACCEPT seconds later)
#
#   target addresses starting "refuse/" are refused with amqp:not-found at attach;
#   target addresses starting "forbidden/" end the session with
#   amqp:unauthorized-access, as RabbitMQ 3.10 does;
#   links to target addresses starting "starve/" get no link credit (AMQP 1.0
#   §2.6.7) until a line {"cmd": "credit", "address": ADDRESS} on stdin grants it:
#   from then on every link to ADDRESS, open or new, gets credit like the others;
#   links to target addresses starting "trickle/" get one credit at attach and one
#   more TRICKLE seconds after each delivery;
#   links to target addresses starting "small/" have a max-message-size of SMALL
#   bytes (AMQP 1.0 §2.7.3).
#
#   relay mode: a message sent to an address starting "relay/" is held unsettled
#   and given, in order, to a receiver attached with that source address (within
#   its credit); the sender's delivery is settled with the receiver's outcome
#   (accepted, rejected with its error, released, modified with its fields), so a
#   device's rejection behind the gateway reaches the cloud sender. What a receiver
#   leaves unsettled when its link or connection goes is held again, first in line.
#   With no receiver nothing is taken: "held" counts what waits.
#
# Every delivery is written to stdout as one JSON line; "ready" once listening;
# "starved" for a link left without credit; "credit" once a grant took effect;
# "detached" when a sender closes its link; "relay-attached" / "relay-detached"
# for relay receivers, "relayed" with the
# outcome passed back, "requeued" for what a leaving receiver held.
# Usage: protonserver.py PORT CERT KEY
import json
import sys
import threading

from proton import Condition, Delivery, Endpoint, Link, SSLDomain, symbol
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

# Link credit a receiving link is kept topped up to.
WINDOW = 200
TRICKLE = 0.3       # seconds between credits on a trickle/ link
DELAY_ACCEPT = 3.0  # seconds before a delay-accept outcome
SMALL = 1024        # max-message-size of a small/ link


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


class Trickle:
    """Grants a trickle/ link its next credit."""

    def __init__(self, link):
        self.link = link

    def on_timer_task(self, event):
        if self.link.state & Endpoint.LOCAL_ACTIVE and self.link.credit == 0:
            self.link.flow(1)


class DelayedAccept:
    """Accepts a delivery late, for delay-accept."""

    def __init__(self, dlv):
        self.dlv = dlv

    def on_timer_task(self, event):
        self.dlv.update(Delivery.ACCEPTED)
        self.dlv.settle()


class Credit:
    """Keeps every receiving link topped up to WINDOW credit, except links to a
    starved address; it takes the place of MessagingHandler's prefetch."""

    def __init__(self, server):
        self.server = server

    def on_link_local_open(self, event):
        self.flow(event.link)

    def on_link_remote_open(self, event):
        self.flow(event.link)

    def on_link_flow(self, event):
        self.flow(event.link)

    def on_delivery(self, event):
        if (event.link.remote_target.address or "").startswith("trickle/"):
            event.container.schedule(TRICKLE, Trickle(event.link))
            return
        self.flow(event.link)

    def flow(self, link):
        if (link.remote_target.address or "").startswith("trickle/"):
            return
        if link.is_receiver and not self.server.starved(link) and link.credit < WINDOW:
            link.flow(WINDOW - link.credit)


class Server(MessagingHandler):
    def __init__(self, port, cert, key):
        super().__init__(prefetch=0, auto_accept=False)
        self.handlers.insert(0, Credit(self))
        self.port, self.cert, self.key = port, cert, key
        self.counts = {}
        self.conns = 0
        self.fed = set()       # starve/ addresses that were granted credit
        self.starving = []     # links left without credit
        self.injector = EventInjector()
        self.held = {}         # relay/ address -> [(message, incoming delivery)]
        self.relayed = {}      # outgoing delivery -> (address, message, incoming delivery)
        self.relay_links = []  # sending links of relay receivers
        self.relay_seq = 0     # order of the relayed deliveries

    def on_start(self, event):
        domain = SSLDomain(SSLDomain.MODE_SERVER)
        domain.set_credentials(self.cert, self.key, None)
        domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
        event.container.listen("amqps://127.0.0.1:%d" % self.port, ssl_domain=domain)
        event.container.selectable(self.injector)
        threading.Thread(target=self.read_commands, daemon=True).start()
        emit(event="ready")

    def read_commands(self):
        # Runs on its own thread: hands each command to the container's thread.
        for line in sys.stdin:
            cmd = json.loads(line)
            self.injector.trigger(ApplicationEvent(cmd["cmd"], subject=cmd))

    def on_credit(self, event):
        address = event.subject["address"]
        self.fed.add(address)
        for link in self.starving:
            if link.target.address == address and link.state & Endpoint.LOCAL_ACTIVE:
                link.flow(WINDOW - link.credit)
        self.starving = [l for l in self.starving if l.target.address != address]
        emit(event="credit", address=address)

    def starved(self, link):
        address = link.remote_target.address or ""
        return address.startswith("starve/") and address not in self.fed

    def conn_id(self, conn):
        n = getattr(conn, "cloudtest_id", None)
        if n is None:
            self.conns += 1
            n = conn.cloudtest_id = self.conns
        return n

    def on_connection_opening(self, event):
        emit(event="connection", conn=self.conn_id(event.connection))

    def on_link_remote_open(self, event):
        link = event.link
        if link.is_sender and not link.state & link.LOCAL_ACTIVE:
            address = link.remote_source.address or ""
            link.source.copy(link.remote_source)
            link.snd_settle_mode = Link.SND_UNSETTLED
            link.rcv_settle_mode = link.remote_rcv_settle_mode
            link.open()
            if address.startswith("relay/"):
                self.relay_links.append(link)
                emit(event="relay-attached", address=address, conn=self.conn_id(event.connection))
            return
        if not link.is_receiver or link.state & link.LOCAL_ACTIVE:
            return
        address = link.remote_target.address or ""
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        if address.startswith("refuse/"):
            link.open()
            link.condition = Condition("amqp:not-found", "no such node: " + address)
            link.close()
            emit(event="refused", address=address, conn=self.conn_id(event.connection))
        elif address.startswith("forbidden/"):
            link.open()
            link.close()
            event.session.condition = Condition("amqp:unauthorized-access", "access to " + address + " refused")
            event.session.close()
            emit(event="forbidden", address=address, conn=self.conn_id(event.connection))
        elif address.startswith("trickle/"):
            link.open()
            link.flow(1)
        elif address.startswith("small/"):
            link.max_message_size = SMALL
            link.open()
        elif self.starved(link):
            link.open()
            self.starving.append(link)
            emit(event="starved", address=address, conn=self.conn_id(event.connection))

    # Relay mode.

    def relay(self, address):
        queue = self.held.get(address, [])
        for link in self.relay_links:
            if link.source.address != address or not link.state & Endpoint.LOCAL_ACTIVE:
                continue
            while queue and link.credit > 0:
                msg, incoming = queue.pop(0)
                out = link.send(msg)
                self.relay_seq += 1
                self.relayed[out] = (address, msg, incoming, self.relay_seq)

    def on_sendable(self, event):
        self.relay(event.link.source.address or "")

    def relay_outcome(self, event):
        out = event.delivery
        entry = self.relayed.pop(out, None)
        if entry is None:
            return
        address, msg, incoming, _ = entry
        state = out.remote_state
        if state == Delivery.REJECTED:
            incoming.local.condition = out.remote.condition
        elif state == Delivery.MODIFIED:
            incoming.local.failed = out.remote.failed
            incoming.local.undeliverable = out.remote.undeliverable
            incoming.local.annotations = out.remote.annotations
        incoming.update(state)
        incoming.settle()
        out.settle()
        cond = out.remote.condition
        emit(event="relayed", address=address, outcome=str(state),
             condition=cond.name if cond else "", description=(cond.description or "") if cond else "")

    on_accepted = on_rejected = on_released = relay_outcome

    def relay_gone(self, link):
        if link not in self.relay_links:
            return
        self.relay_links.remove(link)
        address = link.source.address or ""
        back = [(o, e) for o, e in self.relayed.items() if o.link == link]
        back.sort(key=lambda oe: oe[1][3])
        for o, _ in back:
            del self.relayed[o]
        self.held[address] = [(m, i) for _, (_, m, i, _) in back] + self.held.get(address, [])
        emit(event="relay-detached", address=address, requeued=len(back))
        self.relay(address)

    def on_link_remote_close(self, event):
        if event.link.is_receiver:
            emit(event="detached", address=event.link.target.address or "", conn=self.conn_id(event.connection))
        self.relay_gone(event.link)

    def on_session_remote_close(self, event):
        for link in list(self.relay_links):
            if link.session == event.session:
                self.relay_gone(link)

    def on_connection_remote_close(self, event):
        for link in list(self.relay_links):
            if link.connection == event.connection:
                self.relay_gone(link)

    def on_transport_closed(self, event):
        for link in list(self.relay_links):
            if link.connection == event.connection:
                self.relay_gone(link)

    def on_message(self, event):
        msg, dlv = event.message, event.delivery
        address = event.link.target.address or ""
        if address.startswith("relay/"):
            self.held.setdefault(address, []).append((msg, dlv))
            emit(event="held", address=address, held=len(self.held[address]))
            self.relay(address)
            return
        props = msg.properties or {}
        key = str(msg.id)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        outcome = "accept"
        if n <= int(props.get("x-outcome-times", 1)):
            outcome = props.get("x-outcome", "accept")
        emit(event="delivery", address=event.link.target.address, id=key, n=n,
             delivery_count=msg.delivery_count, outcome=outcome,
             conn=self.conn_id(event.connection), props={k: str(v) for k, v in props.items()},
             annotations={str(k): str(v) for k, v in (msg.annotations or {}).items()},
             body=msg.body.hex() if isinstance(msg.body, (bytes, memoryview)) else str(msg.body))
        if outcome == "accept":
            self.accept(dlv)
        elif outcome == "reject":
            dlv.local.condition = Condition("amqp:precondition-failed", "rejected on request")
            dlv.update(Delivery.REJECTED)
            dlv.settle()
        elif outcome == "release":
            dlv.update(Delivery.RELEASED)
            dlv.settle()
        elif outcome in ("modified-failed", "modified-undeliverable"):
            dlv.local.failed = True
            dlv.local.undeliverable = outcome == "modified-undeliverable"
            dlv.local.annotations = {symbol("x-opt-cloud-attempt"): n}
            dlv.update(Delivery.MODIFIED)
            dlv.settle()
        elif outcome == "detach-link":
            event.link.condition = Condition("amqp:internal-error", "link detached on request")
            event.link.close()
        elif outcome == "drop-connection":
            event.connection.condition = Condition("amqp:connection:forced", "connection dropped on request")
            event.connection.close()
        elif outcome == "delay-accept":
            event.container.schedule(DELAY_ACCEPT, DelayedAccept(dlv))
        # "none": never settled


if __name__ == "__main__":
    Container(Server(int(sys.argv[1]), sys.argv[2], sys.argv[3])).run()
