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
//	meta             "schema" → layout version (1 byte)
//	                 "stats"  → persisted counters, updated in every write transaction
//	q                sequence = the global message sequence counter
//	q/default        8-byte big-endian seq → message record (bbolt order is FIFO order)
//	dead             8-byte big-endian seq → dead-letter record
//
// Messages live in a sub-bucket per route under "q". Today there is one route,
// "default"; per-route queues (priorities, quotas) can be added as more
// sub-buckets without changing the record format, and the sequence counter
// stays global so a seq names one message across all routes.
//
// # Record format
//
// Values start with a format version byte so that the encoding can evolve. A
// message record, version 1:
//
//	1 byte   version (1)
//	8 bytes  received time, Unix nanoseconds, big-endian int64
//	uvarint  length of address, then the address
//	uvarint  length of source, then the source
//	rest     payload: the AMQP 1.0 message sections exactly as received
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
// The file never shrinks; pages freed by deletes are reused by later appends.
//
// # Concurrency
//
// All exported methods of Store are safe for concurrent use. Reads run in
// bbolt read transactions concurrently with the committer. Counters that must
// be 64-bit are published as one immutable Stats value through an
// atomic.Pointer, which is safe on 32-bit ARM and gives consistent snapshots.
package store
