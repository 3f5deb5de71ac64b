"""Publish numbered messages with Eclipse Paho (Debian's python3-paho-mqtt 1.6) and
print one line "ACK SEQ" per acknowledged message (PUBACK for QoS 1, PUBCOMP for QoS
2), "NACK SEQ CODE" per message the server refused (MQTT 5 reason code >= 0x80),
"SENT SEQ" for QoS 0, "HELD" the first time WINDOW messages wait for their
acknowledgement, then "DONE" or "LOST reason" when the connection ends.

At most WINDOW messages are unacknowledged at a time. Paho 1.6 queues without bound
and numbers messages 1..65535 over again without checking that a number is free: a
loop running 65,535 messages ahead of the acknowledgements (a server that stalls)
reuses the packet identifier of a message in flight, Paho replaces the older message,
and its PUBACK is reported for the newer one, which was never sent.

Arguments: host port client-id topic first count qos version(4|5) size [user password]
"""
import struct
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

WINDOW = 1000

mids = {}
mids_lock = threading.Lock()
refused = {}  # mid -> reason code of a PUBACK, PUBREC or PUBCOMP >= 0x80
window = threading.BoundedSemaphore(WINDOW)
held = False
acked = 0
nacked = 0
all_acked = threading.Event()
ended = threading.Event()
connected = threading.Event()

class Client(mqtt.Client):
    """Paho 1.6 reports a message as published whatever the reason code of its PUBACK
    or PUBCOMP (MQTT 5 §3.4.2.1, §3.7.2.1) and sends PUBREL after a refusing PUBREC
    (§3.5.2.1): the refusals are noted here, before Paho handles the packet."""

    def _note_refusal(self):
        packet = self._in_packet['packet']
        if self._protocol == mqtt.MQTTv5 and self._in_packet['remaining_length'] > 2 and packet[2] >= 0x80:
            mid, = struct.unpack("!H", packet[:2])
            with mids_lock:
                refused.setdefault(mid, packet[2])

    def _handle_pubackcomp(self, cmd):
        self._note_refusal()
        return super()._handle_pubackcomp(cmd)

    def _handle_pubrec(self):
        self._note_refusal()
        return super()._handle_pubrec()


proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
c = Client(client_id=cid, protocol=proto)
c.max_inflight_messages_set(32)
c.max_queued_messages_set(0)
if user:
    c.username_pw_set(user, password)

def on_connect(client, userdata, flags, rc, properties=None):
    if rc != 0:
        say("LOST connack %s" % rc)
        ended.set()
    connected.set()

early = {}  # mid -> refusal code (None: accepted), acknowledged before publish() returned it

def acknowledge(seq, code):
    global acked, nacked
    with out_lock:
        if code is None:
            sys.stdout.write("ACK %d\n" % seq)
            acked += 1
        else:
            sys.stdout.write("NACK %d %d\n" % (seq, code))
            nacked += 1
        sys.stdout.flush()
        if acked + nacked == count:
            all_acked.set()
    window.release()

def take_slot():
    """Waits until fewer than WINDOW messages are unacknowledged; False if the
    connection ends first."""
    global held
    if window.acquire(blocking=False):
        return True
    if not held:
        held = True
        say("HELD")
    while not ended.is_set():
        if window.acquire(timeout=0.2):
            return True
    return False

def on_publish(client, userdata, mid):
    # Paho calls this holding its own lock: never call into Paho while holding ours.
    with mids_lock:
        code = refused.pop(mid, None)
        seq = mids.pop(mid, None)
        if seq is None:
            early[mid] = code
            return
    acknowledge(seq, code)

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
    if ended.is_set() or qos > 0 and not take_slot():
        break
    props = None
    if version == 5:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("device", cid), ("seq", str(seq))]
        props.ContentType = "application/octet-stream"
    info = c.publish(topic, body(seq), qos=qos, properties=props)
    if qos > 0:
        with mids_lock:
            done = info.mid in early
            if done:
                code = early.pop(info.mid)
            else:
                mids[info.mid] = seq
        if done:
            acknowledge(seq, code)
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
    say("DONE" if nacked == 0 else "LOST %d refused" % nacked)
else:
    c.loop_stop()
