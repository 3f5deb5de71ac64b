"""A test device on Azure uAMQP-C, through its Python binding (Debian's python3-uamqp).

Package devicetest runs this script with /usr/bin/python3. It sends COUNT messages with
uamqp.SendClient at its defaults (SASL ANONYMOUS, snd-settle-mode unsettled,
rcv-settle-mode second) to amqps://HOST:PORT/ADDRESS, trusting the CA in --ca: the
binding always uses TLS, so the test puts a TLS hop in front of the gateway. Each
message carries the application-properties {"device": DEVICE, "seq": i}, the message-id
"DEVICE:i" and one data section of SIZE bytes (see body()). At the end it prints one
JSON line with the state of each message, and exits 1 unless all were accepted.
"""

import argparse
import json
import sys
import time

import uamqp
from uamqp import authentication, constants
from uamqp.message import MessageProperties

PATTERN_LEN = 251
PATTERN = bytes(range(PATTERN_LEN))


def body(seq, size):
    rep = PATTERN * (size // PATTERN_LEN + 2)
    start = seq % PATTERN_LEN
    return rep[start:start + size]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--address", default="telemetry")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--device", default="uamqp")
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()

    start = time.monotonic()
    auth = authentication.SASLAnonymous(args.host, port=args.port, verify=args.ca)
    target = "amqps://%s:%d/%s" % (args.host, args.port, args.address)
    client = uamqp.SendClient(target, auth=auth, client_name=args.device,
                              msg_timeout=int(args.timeout * 1000))
    msgs = []
    for i in range(args.count):
        msgs.append(uamqp.Message(
            body=body(i, args.size),
            properties=MessageProperties(message_id="%s:%d" % (args.device, i)),
            application_properties={"device": args.device, "seq": i}))
    client.queue_message(*msgs)
    errors = []
    try:
        states = client.send_all_messages(close_on_done=True)
    except Exception as e:  # a connection or link failure ends the run
        states = [m.state for m in msgs]
        errors.append("%s: %s" % (type(e).__name__, e))
    counts = {}
    for s in states:
        counts[s.name] = counts.get(s.name, 0) + 1
    accepted = counts.get(constants.MessageState.SendComplete.name, 0)
    if accepted != args.count and not errors:
        errors.append("%d of %d messages completed" % (accepted, args.count))
    print(json.dumps({"device": args.device, "sent": args.count, "accepted": accepted,
                      "states": counts, "errors": errors,
                      "elapsed": time.monotonic() - start}))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
