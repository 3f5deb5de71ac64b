"""Publish numbered messages with Eclipse Paho (Debian's python3-paho-mqtt 1.6) and
print one line "ACK SEQ" per acknowledged message (PUBACK for QoS 1, PUBCOMP for QoS
2), "SENT SEQ" for QoS 0, then "DONE" or "LOST reason" when the connection ends.

Arguments: host port client-id topic first count qos version(4|5) size [user password]
"""
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

host, port, cid, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
first, count, qos, version, size = (int(a) for a in sys.argv[5:10])
user = sys.argv[10] if len(sys.argv) > 10 else None
password = sys.argv[11] if len(sys.argv) > 11 else None

out_lock = threading.Lock()
def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def body(seq):
    b = ("%s/%d/" % (cid, seq)).encode()
    return b + b"." * max(0, size - len(b))

# Packet identifiers are 16 bits (MQTT 3.1.1 §2.3.1, 5.0 §2.2.1) and Paho reuses them
# once they wrap: at most `window` messages may be unacknowledged, so that an identifier
# always names one message here.
window = threading.Semaphore(1000)
mids = {}
mids_lock = threading.Lock()
acked = 0
all_acked = threading.Event()
ended = threading.Event()
connected = threading.Event()

proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
c = mqtt.Client(client_id=cid, protocol=proto)
c.max_inflight_messages_set(32)
c.max_queued_messages_set(0)
if user:
    c.username_pw_set(user, password)

def on_connect(client, userdata, flags, rc, properties=None):
    if rc != 0:
        say("LOST connack %s" % rc)
        ended.set()
    connected.set()

early = set()  # mids acknowledged before publish() returned them

def acknowledge(seq):
    global acked
    window.release()
    with out_lock:
        sys.stdout.write("ACK %d\n" % seq)
        sys.stdout.flush()
        acked += 1
        if acked == count:
            all_acked.set()

def on_publish(client, userdata, mid):
    # Paho calls this holding its own lock: never call into Paho while holding ours.
    with mids_lock:
        seq = mids.pop(mid, None)
        if seq is None:
            early.add(mid)
            return
    acknowledge(seq)

def on_disconnect(client, userdata, rc, properties=None):
    if not all_acked.is_set():
        say("LOST disconnect %s" % rc)
    ended.set()

c.on_connect = on_connect
c.on_publish = on_publish
c.on_disconnect = on_disconnect
c.reconnect_delay_set(3600, 3600)  # never reconnect: a lost connection ends the run
c.connect(host, port, keepalive=30)
c.loop_start()
connected.wait(30)
for seq in range(first, first + count):
    if ended.is_set():
        break
    props = None
    if version == 5:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("device", cid), ("seq", str(seq))]
        props.ContentType = "application/octet-stream"
    if qos > 0:
        while not window.acquire(timeout=0.2):
            if ended.is_set():
                break
        if ended.is_set():
            break
    info = c.publish(topic, body(seq), qos=qos, properties=props)
    if qos > 0:
        with mids_lock:
            done = info.mid in early
            if done:
                early.discard(info.mid)
            else:
                mids[info.mid] = seq
        if done:
            acknowledge(seq)
    if qos == 0:
        info.wait_for_publish(30)
        say("SENT %d" % seq)
if qos == 0 and not ended.is_set():
    all_acked.set()
while not ended.is_set() and not all_acked.is_set():
    all_acked.wait(0.2)
if all_acked.is_set():
    c.disconnect()
    c.loop_stop()
    say("DONE")
else:
    c.loop_stop()
