// Package store is the gateway's durable message queue: messages received from
// devices are appended to a bbolt file, read in order by the uplink, and deleted
// once the cloud broker accepted them (or moved to a dead-letter area when it
// rejected them).
//
// # Group commit
//
// A Store has exactly one goroutine, the committer, that owns every write.
// Append, Delete and DeadLetter send a request to it over a channel. The
// committer takes everything that queued while the previous commit ran (up to
// Options.MaxBatch, optionally waiting Options.MaxDelay for more), applies it
// in ONE bbolt read-write transaction, commits and fsyncs once, and only then
// completes every request of the batch. Durability therefore costs one fsync
// per batch, not per message: an SD card manages roughly a thousand fsyncs per
// second, and with many producers a batch holds many messages. If the commit
// fails (disk full, Options.MaxFileSize reached, I/O error) every request of
// the batch gets the error and nothing of it is visible; the next batch tries
// again, so the store recovers when the disk does. bbolt's DB.Batch is not
// used because its callbacks may run more than once.
//
// # File layout
//
// The bbolt file holds three top-level buckets:
//
//	meta             "schema" → layout version (1 byte: 2 since expiry, 3 once a route besides
//	                            default exists; 1 is upgraded at Open)
//	                 "stats"  → persisted totals, updated in every write transaction
//	                 "route/NAME" → persisted counters of route NAME (messages, bytes)
//	                 "routing" → fingerprint of the routes that placed the messages
//	                 "totals" → messages ever dropped and expired
//	q                sequence = the global message sequence counter
//	q/NAME           8-byte big-endian seq → message record (bbolt order is FIFO order)
//	dead             8-byte big-endian seq → dead-letter record
//	expiry           8-byte expiry (Unix ns) + 8-byte seq → empty: queued messages by expiry
//
// Messages live in a sub-bucket per route under "q" (see Routes). The
// sequence counter is global, so a seq names one message across all routes.
//
// # Record format
//
// Values start with a format version byte so that the encoding can evolve. A
// message record, version 2 (written since expiry support):
//
//	1 byte   version (2)
//	8 bytes  received time, Unix nanoseconds, big-endian int64
//	8 bytes  expiry time, Unix nanoseconds, big-endian int64; 0: never
//	then as version 1 from the address on
//
// Version 1 records (no expiry) are still read; a message record, version 1:
//
//	1 byte   version (1)
//	8 bytes  received time, Unix nanoseconds, big-endian int64
//	uvarint  length of address, then the address
//	uvarint  length of source, then the source
//	rest     payload: the message's bytes (AMQP 1.0 sections) exactly as received
//
// A dead-letter record, version 1:
//
//	1 byte   version (1)
//	8 bytes  dead-lettered at, Unix nanoseconds, big-endian int64
//	uvarint  length of reason, then the reason
//	rest     the message record as it was in the queue
//
// Decoding checks every length against the bytes that remain; a corrupt record
// yields an error wrapping ErrCorrupt that names the seq, never a panic.
//
// # bbolt settings
//
// Options chosen for a Raspberry Pi (armhf and arm64) with an SD card:
//
//   - Timeout on the file lock (Options.LockTimeout, 1 s by default): a second
//     process opening the same file fails with ErrLocked instead of hanging.
//   - FreelistType hashmap and NoFreelistSync: a queue deletes from the front
//     and appends at the back, so after a backlog drains the file holds many
//     free pages. Syncing the freelist would rewrite all of them in every
//     commit (write amplification on flash); instead bbolt rebuilds the
//     freelist at Open by scanning the file, which costs one sequential read
//     of the file at start-up (and again after a failed commit).
//   - No InitialMmapSize: on 32-bit ARM bbolt can map at most 2 GB of address
//     space in total; reserving a large mapping up front would waste it. bbolt
//     doubles the mapping as the file grows. Options.MaxFileSize caps the file
//     below that limit (1 GB by default on 32-bit platforms) and below the
//     free space of the card.
//   - FillPercent 1.0 on queue buckets: keys are always appended at the end, so
//     full pages are not split in half (bbolt's default of 0.5 wastes half of
//     every page for this workload).
//
// The file never shrinks by itself; pages freed by deletes are reused by later
// appends. See Compaction.
//
// # Budgets and what happens when full
//
// Options.MaxBytes (queued payload bytes), MaxMessages and MinFree (free
// bytes of the file system, from statfs at most every 100 ms on the committer)
// are checked for every append inside the commit. With WhenFull Backpressure
// (the default) an append over budget fails with ErrFull, Full reports true
// (Stats.FullReason says which budget) and the gateway grants devices no
// credit until deletes make room. With DropOldest the committer deletes the
// oldest queued messages in the same transaction to make room, counts them
// (Stats.DroppedOldest) and logs one line per burst of drops. Nothing is ever
// dropped silently. Requeued dead letters bypass the budgets. With several
// routes, see Routes.
//
// # Expiry
//
// The store never looks into a payload. The producer works out when a message
// expires from its content (for AMQP: the earlier of received+header ttl and
// properties absolute-expiry-time, see package edge/message) and hands it over
// in Message.Expires; a message without one expires at received plus its
// route's DefaultTTL, or never. It is stored in the record and in the expiry index. Read skips
// expired messages; every commit, and the idle committer once a second,
// deletes up to 4096 due messages (Stats.Expired). Dead letters do not expire.
//
// # Compaction
//
// bbolt files never shrink. When the committer is idle and the live data is
// small (under 4 MiB estimated) while the file is above
// Options.CompactMinSize (8 MiB) and 4× the live data, it copies the live
// data into <file>.compact with bbolt.Compact, fsyncs it, renames it over the
// store, fsyncs the directory and reopens. Writes wait for it (the pause is in
// Stats.LastCompaction); reads wait only for the swap. A crash leaves either
// file complete; Open deletes a stale copy.
//
// # Damaged files
//
// With Options.Recover (the gateway sets it) Open first validates the file
// without bbolt (a meta page with a valid checksum; the file as long as its
// pages), then walks every bucket in a read-only open under recover() and
// SetPanicOnFault, because bbolt panics, sometimes on goroutines of its own,
// on damaged pages. If that fails, the file is renamed to
// <file>.corrupt-<UTC time> and kept, a fresh file is started, every record
// that can still be read from the old one (a read-only walk that seeks past
// damaged pages) is copied in under its seq, and the result is logged at
// error level and reported in Stats.Recovered (Salvaged, Lost). A file whose
// meta pages are both gone, or whose tree root was truncated away, salvages
// nothing: raw page scanning was left out because freed pages hold deleted
// messages that would come back as duplicates.
//
// # Routes
//
// A route (Options.Routes) is one FIFO queue with its own priority, budget
// (MaxBytes, MaxMessages), WhenFull policy and DefaultTTL. A message goes to
// the route whose address pattern matches its target address (exact
// addresses first, then the longest prefix pattern); the route "default"
// takes the rest. The route is chosen once, at append time; requeued dead
// letters are routed again by their address.
//
// ReadNext drains by strict priority: a reader keeps one position per route
// in a Cursor, and every call starts again from the highest priority, so an
// alarm appended while a telemetry backlog drains is read on the next call.
// Routes of equal priority are merged in seq order. A low-priority route
// waits while higher ones have messages; that is the point of priorities.
//
// Budgets nest: a route's own budget is checked first, then the store's
// totals and MinFree. A full route with Backpressure makes FullFor true for
// its addresses only, so the edge withholds credit from links to that route
// while the others flow. When the store's totals are reached, room is made by
// dropping the oldest messages of DropOldest routes of lower priority than
// the route appended to (lowest priority first), then the route's own if it
// is DropOldest: alarms with backpressure keep being stored while old
// telemetry is dropped, and a route never loses messages to a route of lower
// or equal priority. Drops are counted per route (RouteStats.Dropped) and
// logged.
//
// Each route's counters are persisted in meta next to the totals, in the
// same transaction; at Open they must add up to the totals, else everything
// is recounted. When the configured routes change (meta "routing" holds a
// fingerprint of them), Open moves every queued message whose address now
// maps to another route onto that route, under its seq, in chunks: a route's
// messages stay in seq order, so one address's messages keep their order and
// follow the new priority. A route that is in the file but no longer
// configured is emptied that way (an orphan: shown in Stats until it is
// removed at the next Open; a record too damaged to read its address stays
// on it and is still read at priority 0). The expiry index and the dead
// letters are shared by all routes.
//
// # Concurrency
//
// All exported methods of Store are safe for concurrent use. Reads run in
// bbolt read transactions concurrently with the committer. Counters that must
// be 64-bit are published as one immutable Stats value through an
// atomic.Pointer, which is safe on 32-bit ARM and gives consistent snapshots.
//
// Signals replace polling: WatchAppends wakes any number of consumers of the
// queue after a commit that appended (the uplink now, a device-bound sender
// next), WatchRoom wakes producers when Full or FullFor turned false (the
// edge, which withholds link credit meanwhile). The committer fires them
// without blocking, before it calls the requests' completions.
//
// # The code
//
// By concept: store.go opens and closes the file; options.go and message.go
// hold the configuration and the envelope; write.go is the write path (the
// methods that send a request to the committer), commit.go the committer's
// loop and transaction, apply.go one operation per request kind, txn.go the
// put and remove primitives of a transaction, quota.go the budgets; read.go
// the reads; route.go the routing table; admin.go the listing and purging
// behind the queue command; stats.go and counters.go the counters; signal.go
// the watches; expiry.go, compact.go and recover.go what their names say.
package store
