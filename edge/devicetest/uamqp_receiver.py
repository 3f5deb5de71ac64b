"""A test device that receives commands on Azure uAMQP-C, through its Python binding
(Debian's python3-uamqp).

Package devicetest runs this script with /usr/bin/python3. It receives from
amqps://HOST:PORT/SOURCE with uamqp.ReceiveClient at its defaults (SASL ANONYMOUS,
rcv-settle-mode first, prefetch 300) except auto_complete, turned off so that each
message gets its own outcome: it takes COUNT messages, accepts each except the one at
index REJECT (0-based; -1: none), which it rejects with condition
shadowgw:test-refused, then closes. The binding always uses TLS, so the test puts a TLS
hop in front of the gateway; --ca is the hop's certificate. It prints one JSON line with
the bodies in the order they came (as text), the outcomes and errors, and exits 1 on an
error or a time-out.
"""

import argparse
import json
import sys
import time

import uamqp
from uamqp import authentication


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--reject", type=int, default=-1)
    p.add_argument("--device", default="uamqp")
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()

    start = time.monotonic()
    r = {"device": args.device, "bodies": [], "accepted": 0, "rejected": 0, "errors": []}
    auth = authentication.SASLAnonymous(args.host, port=args.port, verify=args.ca)
    source = "amqps://%s:%d/%s" % (args.host, args.port, args.source)
    client = uamqp.ReceiveClient(source, auth=auth, client_name=args.device, auto_complete=False)
    try:
        client.open()
        while len(r["bodies"]) < args.count:
            left = args.timeout - (time.monotonic() - start)
            if left <= 0:
                r["errors"].append("timed out after %ss with %d of %d" % (args.timeout, len(r["bodies"]), args.count))
                break
            batch = client.receive_message_batch(max_batch_size=args.count - len(r["bodies"]),
                                                 timeout=int(min(left, 1) * 1000))
            for m in batch:
                data = b"".join(m.get_data())
                r["bodies"].append(data.decode())
                i = len(r["bodies"]) - 1
                if i == args.reject:
                    m.reject(condition="shadowgw:test-refused",
                             description="%s refuses command %d" % (args.device, i))
                    r["rejected"] += 1
                else:
                    m.accept()
                    r["accepted"] += 1
    except Exception as e:  # a connection or link failure ends the run
        r["errors"].append("%s: %s" % (type(e).__name__, e))
    finally:
        client.close()
    r["elapsed"] = time.monotonic() - start
    print(json.dumps(r))
    sys.exit(1 if r["errors"] else 0)


if __name__ == "__main__":
    main()
