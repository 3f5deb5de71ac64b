package store

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AppendAsync queues m for the next group commit and calls done exactly once.
// Normally done runs on the committer goroutine after the transaction holding
// m was committed and fsynced (err == nil, m.Seq set before the call) or with
// the commit's error (m.Seq unchanged). If the store is closed or m is too
// large, done is called with the error before AppendAsync returns.
//
// done must not block and must not call the Store's blocking methods (Append,
// Delete, DeadLetter, Check, Close): it runs on the goroutine they wait for.
// AppendAsync itself blocks while the request queue (Options.MaxBatch
// entries) is full. The store takes ownership of m.Payload; m itself must not
// be modified until done was called. A nil done is allowed.
func (s *Store) AppendAsync(m *Message, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	r, err := s.newAppend(m)
	if err == nil {
		r.msg, r.appended = m, done // see request.finish: no closure per message
		err = s.enqueue(context.Background(), r)
	}
	if err != nil {
		done(fmt.Errorf("store: append: %w", err))
	}
}

// Append stores m durably and sets m.Seq; it returns after the commit holding
// m was fsynced. If ctx ends first, Append returns the context's error, m is
// left unchanged, and the message may still be stored.
func (s *Store) Append(ctx context.Context, m *Message) error {
	r, err := s.newAppend(m)
	if err != nil {
		return fmt.Errorf("store: append: %w", err)
	}
	seq, err := s.do(ctx, r)
	if err != nil {
		return err
	}
	m.Seq = seq
	return nil
}

func (s *Store) newAppend(m *Message) (*request, error) {
	if recordSize(m.Address, m.Source, len(m.Payload)) > bolt.MaxValueSize {
		return nil, fmt.Errorf("%d payload bytes: %w", len(m.Payload), ErrTooLarge)
	}
	received := m.Received
	if received.IsZero() {
		received = time.Now()
	}
	r := s.rt.lookup(m.Address)
	return &request{
		kind:     opAppend,
		route:    r,
		address:  m.Address,
		source:   m.Source,
		received: unixNanos(received),
		expires:  s.expiresAt(m, r, received),
		payload:  m.Payload,
	}, nil
}

// Delete removes the messages with the given seqs, typically after the cloud
// accepted them, and returns after the commit. Seqs that are not queued are
// ignored. Deleting is batched with concurrent appends.
func (s *Store) Delete(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := s.do(context.Background(), &request{kind: opDelete, seqs: seqs})
	return err
}

// DeadLetter moves the message seq to the dead-letter area with reason, in one
// transaction, and returns after the commit. It returns an error wrapping
// ErrNotFound if seq is not queued.
func (s *Store) DeadLetter(seq uint64, reason string) error {
	_, err := s.do(context.Background(), &request{kind: opDeadLetter, seqs: []uint64{seq}, reason: reason})
	return err
}

// Rewrite replaces the payload of the queued message seq, keeping its seq,
// route, address, source, received and expiry times, and returns after the
// commit. The uplink uses it to record durably what the cloud asked for with a
// modified outcome (AMQP 1.0 §3.4.5: a delivery-count incremented, annotations
// merged), so that it survives a restart. Budgets do not apply. It returns an
// error wrapping ErrNotFound if seq is not queued. The store takes ownership
// of payload.
func (s *Store) Rewrite(seq uint64, payload []byte) error {
	if recordSize("", "", len(payload)) > bolt.MaxValueSize {
		return fmt.Errorf("store: rewrite: %d payload bytes: %w", len(payload), ErrTooLarge)
	}
	_, err := s.do(context.Background(), &request{kind: opRewrite, seqs: []uint64{seq}, payload: payload})
	return err
}

// DeleteDeadLetters removes dead letters by seq and returns after the commit.
// Seqs that are not dead letters are ignored.
func (s *Store) DeleteDeadLetters(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := s.do(context.Background(), &request{kind: opDeleteDead, seqs: seqs})
	return err
}

// Check verifies the file: bbolt's page-level consistency check, that every
// record decodes, that keys are not above the sequence counter, and that the
// persisted counters match the records; for the device-bound queues also that
// each device's counts match its records and every queued command has its expiry
// entry and no entry points at nothing (command_check.go). It returns every
// problem found, joined. It runs on the committer goroutine, so it delays all
// writes while it reads the whole file.
func (s *Store) Check() error {
	_, err := s.do(context.Background(), &request{kind: opCheck})
	return err
}

// do enqueues r and waits for its completion or for ctx to end.
func (s *Store) do(ctx context.Context, r *request) (uint64, error) {
	type result struct {
		seq uint64
		err error
	}
	ch := make(chan result, 1)
	r.done = func(seq uint64, err error) { ch <- result{seq, err} }
	if err := s.enqueue(ctx, r); err != nil {
		return 0, fmt.Errorf("store: %s: %w", r.kind, err)
	}
	select {
	case res := <-ch:
		return res.seq, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("store: %s: %w", r.kind, ctx.Err())
	}
}

// enqueue hands r to the committer, blocking while the queue is full.
func (s *Store) enqueue(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.kind == opAppend {
		r.queued = time.Now()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
