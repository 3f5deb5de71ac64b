// rhea_receiver.js is a test device on the rhea library (npm, pinned in
// scripts/package.json) that receives commands, at rhea's defaults: no SASL layer, a
// receiver link with rhea's automatic credit (prefetch 500) and, since autoaccept is
// turned off here, one outcome per message. It takes COUNT messages from SOURCE,
// accepts each except the one at index REJECT (0-based; -1: none), which it rejects
// with condition shadowgw:test-refused, then closes. It prints one JSON line with the
// bodies in the order they came (as text), the outcomes and errors, and exits 1 on an
// error or a time-out. Package devicetest runs it with NODE_PATH set to
// scripts/node_modules.
// Usage: node rhea_receiver.js HOST PORT SOURCE COUNT REJECT DEVICE TIMEOUT_SECONDS
'use strict';
var rhea = require('rhea');

var host = process.argv[2], port = parseInt(process.argv[3], 10), source = process.argv[4];
var count = parseInt(process.argv[5], 10), reject = parseInt(process.argv[6], 10);
var device = process.argv[7], timeout = parseFloat(process.argv[8]);

var start = Date.now();
var r = {device: device, bodies: [], accepted: 0, rejected: 0, errors: []};
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
function text(body) {
    if (body && body.typecode === 0x75) body = body.content; // a data section
    return Buffer.isBuffer(body) ? body.toString() : String(body);
}

var container = rhea.create_container({id: device});
var conn = container.connect({host: host, port: port, reconnect: false});
conn.open_receiver({source: source, autoaccept: false});
container.on('message', function (context) {
    if (r.bodies.length >= count) {
        context.delivery.release({delivery_failed: false});
        return;
    }
    r.bodies.push(text(context.message.body));
    var i = r.bodies.length - 1;
    if (i === reject) {
        context.delivery.reject({condition: 'shadowgw:test-refused', description: device + ' refuses command ' + i});
        r.rejected++;
    } else {
        context.delivery.accept();
        r.accepted++;
    }
    if (r.bodies.length === count) finish(context.connection);
});
container.on('error', function (err) { r.errors.push(String(err)); finish(conn); });
container.on('disconnected', function (context) {
    if (!finished) { r.errors.push('disconnected: ' + (context.error || 'closed')); finish(null); }
});
container.on('receiver_error', function (context) { r.errors.push('link: ' + context.receiver.error); finish(conn); });
setTimeout(function () {
    r.errors.push('timed out after ' + timeout + 's with ' + r.bodies.length + ' of ' + count);
    finish(conn);
}, timeout * 1000).unref();
var keep = setInterval(function () { if (finished) clearInterval(keep); }, 100);
