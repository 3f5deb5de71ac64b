package uplink

import (
	"fmt"

	amqp "github.com/Azure/go-amqp"
)

// storeWorker writes the forwarder's results to the store, one operation at a
// time, in the order the owner hands them over: deletes of accepted messages in
// batches (the owner merges the seqs accepted while the worker was busy), dead
// letters, and rewrites after a modified outcome. Neither the owner nor a lane
// waits for a commit; the owner keeps the seqs busy until the worker hands the
// operation back, so that no pass reads them again before.
type storeWorker struct {
	u   *Uplink
	in  chan *storeOp // owner → worker; closed by the owner
	out chan *storeOp // worker → owner: the operation, done, with its error
}

// deleteBatch is the most seqs deleted in one operation.
const deleteBatch = 1024

type opKind int

const (
	opDelete opKind = iota
	opDeadLetter
	opRewrite
)

// storeOp is an operation for the store worker.
type storeOp struct {
	kind            opKind
	seqs            []uint64
	address, reason string              // opDeadLetter
	payload         []byte              // opRewrite: as stored
	state           *amqp.StateModified // opRewrite
	err             error
}

// run does the operations until in is closed.
func (w *storeWorker) run() {
	for op := range w.in {
		switch op.kind {
		case opDelete:
			op.err = w.u.src.Delete(op.seqs...)
		case opDeadLetter:
			op.err = w.u.deadLetter(op.seqs[0], op.address, op.reason)
		case opRewrite:
			op.err = w.u.rewriteModified(op.seqs[0], op.payload, op.state)
		}
		w.out <- op
	}
}

// deadLetter moves a message aside with reason and counts it. A message already
// gone (deleted or dead-lettered before) is not an error.
func (u *Uplink) deadLetter(seq uint64, address, reason string) error {
	err := u.src.DeadLetter(seq, reason)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("dead-letter message %d: %w", seq, err)
	}
	u.st.deadLettered.Add(1)
	u.deadLetterLog(seq, address, reason)
	return nil
}
