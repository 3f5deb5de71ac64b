// rhea_device.js is a test device on the rhea library (npm, pinned in
// scripts/package.json), at rhea's defaults: no SASL layer, a sender link whose
// attach leaves the settlement modes out (snd-settle-mode mixed, rcv-settle-mode first)
// and unsettled sends, as many as the link credit allows. Package devicetest runs it
// with node and NODE_PATH set to scripts/node_modules.
//
// Each message carries the application-properties {"device": DEVICE, "seq": i}, the
// message-id "DEVICE:i" and one data section of SIZE bytes (see body()). At the end it
// prints one JSON line with the outcomes, and exits 1 on an error or a time-out.
// Usage: node rhea_device.js HOST PORT ADDRESS COUNT SIZE DEVICE TIMEOUT_SECONDS
'use strict';
var rhea = require('rhea');

var host = process.argv[2], port = parseInt(process.argv[3], 10), address = process.argv[4];
var count = parseInt(process.argv[5], 10), size = parseInt(process.argv[6], 10);
var device = process.argv[7], timeout = parseFloat(process.argv[8]);

var PATTERN_LEN = 251;
function body(seq) {
    var b = Buffer.alloc(size);
    for (var j = 0; j < size; j++) b[j] = (seq + j) % PATTERN_LEN;
    return b;
}

var start = Date.now();
var r = {device: device, sent: 0, accepted: 0, rejected: 0, released: 0, modified: 0, conditions: [], errors: []};
var finished = false;
function finish(conn) {
    if (finished) return;
    finished = true;
    r.elapsed = (Date.now() - start) / 1000;
    process.stdout.write(JSON.stringify(r) + '\n');
    if (conn) conn.close();
    process.exitCode = r.errors.length ? 1 : 0;
    setTimeout(function () { process.exit(); }, 200).unref();
}
function answered() { return r.accepted + r.rejected + r.released + r.modified; }

var container = rhea.create_container({id: device});
var conn = container.connect({host: host, port: port, reconnect: false});
var sender = conn.open_sender(address);
container.on('sendable', function (context) {
    while (r.sent < count && context.sender.sendable()) {
        context.sender.send({
            message_id: device + ':' + r.sent,
            application_properties: {device: device, seq: r.sent},
            body: rhea.message.data_section(body(r.sent)),
        });
        r.sent++;
    }
});
function outcome(kind) {
    return function (context) {
        r[kind]++;
        if (kind === 'rejected') {
            var e = context.delivery.remote_state && context.delivery.remote_state.error;
            r.conditions.push(e ? e.condition + ': ' + e.description : 'rejected');
        }
        if (answered() === count) finish(context.connection);
    };
}
container.on('accepted', outcome('accepted'));
container.on('rejected', outcome('rejected'));
container.on('released', outcome('released'));
container.on('modified', outcome('modified'));
container.on('error', function (err) { r.errors.push(String(err)); finish(conn); });
container.on('disconnected', function (context) {
    if (!finished) { r.errors.push('disconnected: ' + (context.error || 'closed')); finish(null); }
});
container.on('sender_error', function (context) { r.errors.push('link: ' + context.sender.error); finish(conn); });
setTimeout(function () {
    r.errors.push('timed out after ' + timeout + 's with ' + answered() + ' of ' + count + ' answered');
    finish(conn);
}, timeout * 1000).unref();
// Keep the process alive until finish: the timer above is unref'd.
var keep = setInterval(function () { if (finished) clearInterval(keep); }, 100);
