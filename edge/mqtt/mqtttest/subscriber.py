"""Subscribe with Eclipse Paho (Debian's python3-paho-mqtt 1.6) and print what arrives.

Prints "CONNACK session_present=N" once connected, then one JSON line per message
({"topic", "payload", "dup", "qos", "props"}; props holds the MQTT 5 properties),
then "DONE" after COUNT messages (their PUBACKs sent, a clean DISCONNECT), or
"TIMEOUT" after TIMEOUT seconds. With DIE_AT > 0 the process ends abruptly inside
the callback of message DIE_AT, after printing it: Paho sends a QoS 1 PUBACK only
after the callback returns, so that message (and any behind it) stays unacknowledged.

Arguments: host port client-id version(4|5) clean(0|1) session-expiry topic(- for none)
qos count die-at timeout [user password]
"""
import json
import os
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

host, port, cid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
version, clean, expiry = int(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
topic, qos, count, die_at, timeout = sys.argv[7], int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]), float(sys.argv[11])
user = sys.argv[12] if len(sys.argv) > 12 else None
password = sys.argv[13] if len(sys.argv) > 13 else None


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if version == 5:
    c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
else:
    c = mqtt.Client(client_id=cid, clean_session=clean, protocol=mqtt.MQTTv311)
if user:
    c.username_pw_set(user, password)

state = {"n": 0, "subscribed": False}


def on_connect(client, userdata, flags, rc, properties=None):
    say("CONNACK session_present=%d rc=%s" % (flags.get("session present", 0), rc))
    if topic != "-":
        client.subscribe(topic, qos)


def on_message(client, userdata, msg):
    props = {}
    p = getattr(msg, "properties", None)
    if p is not None:
        for name in ("CorrelationData", "ResponseTopic", "ContentType", "MessageExpiryInterval", "PayloadFormatIndicator"):
            if hasattr(p, name):
                v = getattr(p, name)
                props[name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        if hasattr(p, "UserProperty"):
            props["UserProperty"] = [list(kv) for kv in p.UserProperty]
    say(json.dumps({"topic": msg.topic, "payload": msg.payload.decode("utf-8", "replace"),
                    "dup": bool(msg.dup), "qos": msg.qos, "props": props}))
    state["n"] += 1
    if die_at and state["n"] == die_at:
        os._exit(3)


c.on_connect = on_connect
c.on_message = on_message
if version == 5:
    cp = Properties(PacketTypes.CONNECT)
    if expiry:
        cp.SessionExpiryInterval = expiry
    c.connect(host, port, keepalive=30, clean_start=clean, properties=cp)
else:
    c.connect(host, port, keepalive=30)
deadline = time.time() + timeout
while state["n"] < count:
    if time.time() > deadline:
        say("TIMEOUT")
        sys.exit(1)
    c.loop(0.05)
for _ in range(5):  # let the last PUBACK out before DISCONNECT
    c.loop(0.02)
c.disconnect()
say("DONE")
