// rheabroker.js is the AMQP 1.0 broker behind cloudtest.StartRhea: a container of the
// rhea library (npm, the version pinned in scripts/package.json) listening with TLS and
// SASL PLAIN on 127.0.0.1:PORT, at rhea's defaults otherwise. In particular it answers a
// sender's attach with rhea's own link defaults, snd-settle-mode mixed and
// rcv-settle-mode first (AMQP 1.0 §2.7.3), and accepts every message (autoaccept).
//
// Every delivery is written to stdout as one JSON line; "ready" once listening. With
// RHEA_COUNT_ONLY=1 in the environment it only counts the deliveries (a sink for
// measurements, which a line per delivery would slow down): a line
// {"event": "count", "n": N} at most every 50 ms while they arrive.
// Usage: node rheabroker.js PORT CERT KEY USER; the password is in the environment
// variable RHEA_PASSWORD.
'use strict';
var fs = require('fs');
var rhea = require('rhea');

var port = parseInt(process.argv[2], 10);
var user = process.argv[5];
var password = process.env.RHEA_PASSWORD;

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function text(v) {
    if (v === undefined || v === null) return '';
    if (Buffer.isBuffer(v)) return v.toString('hex');
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
}

function fields(m) {
    var out = {};
    for (var k in (m || {})) out[k] = text(m[k]);
    return out;
}

var container = rhea.create_container({id: 'rheabroker'});
container.sasl_server_mechanisms.enable_plain(function (u, p) {
    return u === user && p === password;
});
var conns = 0;
container.on('connection_open', function (context) {
    context.connection.cloudtest_id = ++conns;
    emit({event: 'connection', conn: conns});
});
// A receiving link takes the sender's target address as its own, as a broker
// does (rhea's own examples too); without it the answer has a null target, which
// means the link is refused (§2.6.3). The settlement modes stay rhea's defaults: the
// attach leaves them out, and so says snd-settle-mode mixed, rcv-settle-mode first.
container.on('receiver_open', function (context) {
    var a = context.receiver.remote.attach;
    var address = a.target ? a.target.address : '';
    context.receiver.set_target({address: address});
    var local = context.receiver.local.attach;
    emit({event: 'attach', address: address,
        snd_settle_mode: local.snd_settle_mode === undefined ? 2 : local.snd_settle_mode,
        rcv_settle_mode: local.rcv_settle_mode === undefined ? 0 : local.rcv_settle_mode,
        conn: context.connection.cloudtest_id});
});
var counts = {};
var countOnly = process.env.RHEA_COUNT_ONLY === '1';
var received = 0, reported = 0;
if (countOnly) {
    setInterval(function () {
        if (received !== reported) {
            reported = received;
            emit({event: 'count', n: received});
        }
    }, 50).unref();
}
container.on('message', function (context) {
    if (countOnly) {
        received++;
        return;
    }
    var m = context.message;
    var a = context.receiver.remote.attach;
    var id = text(m.message_id);
    counts[id] = (counts[id] || 0) + 1;
    var body = m.body;
    if (body && body.typecode === 0x75) body = body.content; // a data section
    emit({event: 'delivery', address: a.target ? a.target.address : '', id: id, n: counts[id],
        outcome: 'accept', conn: context.connection.cloudtest_id,
        props: fields(m.application_properties), annotations: fields(m.message_annotations),
        body: text(body)});
});
container.on('error', function (err) {
    process.stderr.write('rheabroker: ' + err + '\n');
});
var server = container.listen({
    port: port, host: '127.0.0.1', transport: 'tls',
    cert: fs.readFileSync(process.argv[3]), key: fs.readFileSync(process.argv[4]),
});
server.on('listening', function () { emit({event: 'ready'}); });
server.on('error', function (err) {
    process.stderr.write('rheabroker: listen: ' + err + '\n');
    process.exit(1);
});
