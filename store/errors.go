package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by the store wrap these; test with errors.Is.
var (
	// ErrClosed is returned by operations on a Store after Close was called.
	ErrClosed = errors.New("store is closed")

	// ErrLocked is returned by Open when another process holds the file lock
	// for longer than Options.LockTimeout.
	ErrLocked = errors.New("file is locked by another process")

	// ErrNotFound is returned by DeadLetter when no message has the given seq.
	ErrNotFound = errors.New("message not found")

	// ErrCorrupt is wrapped by errors about a record that cannot be decoded.
	// The error text names the seq of the record.
	ErrCorrupt = errors.New("corrupt record")

	// ErrFull is wrapped by commit errors caused by the file reaching
	// Options.MaxFileSize or the file system running out of space, and by
	// appends refused because a budget is used up. Deleting messages frees
	// pages for later appends, and the store keeps working once space is
	// available again. Its method Full reports true, which is how producers
	// that do not know the store (the edge) recognise it.
	ErrFull error = fullError{}

	// ErrTooLarge is returned when a message cannot be stored in one bbolt
	// value (about 2 GB).
	ErrTooLarge = errors.New("message too large")

	// ErrSchema is returned by Open when the file was written by a newer,
	// incompatible version of the store.
	ErrSchema = errors.New("unsupported file layout version")
)

// CorruptError describes a record that cannot be decoded. It wraps
// ErrCorrupt. A reader that meets one can skip the record by reading after
// Seq, or remove it with Delete(Seq).
type CorruptError struct {
	Seq    uint64 // key of the damaged record
	Detail string // what is wrong, with the byte offset
}

// Error returns "record <seq>: <detail>: corrupt record".
func (e *CorruptError) Error() string {
	return fmt.Sprintf("record %d: %s: %v", e.Seq, e.Detail, ErrCorrupt)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// fullError is the type of ErrFull.
type fullError struct{}

func (fullError) Error() string { return "store is full" }

// Full reports true: the store has no room.
func (fullError) Full() bool { return true }
