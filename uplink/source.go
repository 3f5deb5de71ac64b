package uplink

import (
	"errors"

	"github.com/shadowgw/shadowgw/store"
)

// This file is the uplink's only contact with the store's API: the Source
// interface, the stored message and cursor types, and the store's errors.

// Source is what the uplink needs from the store; *store.Store implements it. Its
// methods must be safe for concurrent use.
type Source interface {
	// ReadNextFunc returns up to max messages after the cursor and advances it
	// past them: routes by strict priority, highest first, each route in Seq order
	// (see store.Store.ReadNext). It passes over, without copying them, the
	// messages skip refuses. A zero Cursor reads from the start.
	ReadNextFunc(c *store.Cursor, max int, skip func(seq uint64, address []byte) bool) ([]store.Message, error)
	// Delete removes messages after the cloud accepted them; it returns after the
	// commit.
	Delete(seqs ...uint64) error
	// DeadLetter moves a message the cloud refused, or that cannot be sent, aside.
	DeadLetter(seq uint64, reason string) error
	// Rewrite replaces a queued message's payload (after a modified outcome).
	Rewrite(seq uint64, payload []byte) error
	// Notify fires (capacity 1) after a commit that appended messages.
	Notify() <-chan struct{}
}

// storedMessage is a message as the store keeps it: Seq, Address, Source, Received,
// Payload.
type storedMessage = store.Message

// cursor is a position in the store's routes for Source.ReadNextFunc.
type cursor = store.Cursor

// isStoreClosed reports whether err means the store was closed under the uplink.
func isStoreClosed(err error) bool { return errors.Is(err, store.ErrClosed) }

// isNotFound reports whether err means the message is no longer stored.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// corruptRecord returns the seq and the detail of a record the store could not
// decode, if err is about one.
func corruptRecord(err error) (seq uint64, detail string, ok bool) {
	if ce := (*store.CorruptError)(nil); errors.As(err, &ce) {
		return ce.Seq, ce.Detail, true
	}
	return 0, "", false
}
