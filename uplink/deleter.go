package uplink

import (
	"context"
	"fmt"
)

// deleter deletes accepted messages from the store in batches, in its own goroutine,
// so that the store's commits (an fsync each) do not hold up settling.
type deleter struct {
	src  Source
	seqs chan uint64
	done chan struct{}
	err  error // first Delete error; read after done is closed
}

const deleteBatch = 1024

func startDeleter(src Source, fail context.CancelCauseFunc) *deleter {
	d := &deleter{src: src, seqs: make(chan uint64, deleteBatch), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		batch := make([]uint64, 0, deleteBatch)
		for seq := range d.seqs {
			batch = append(batch[:0], seq)
		more:
			for len(batch) < deleteBatch {
				select {
				case seq, ok := <-d.seqs:
					if !ok {
						break more
					}
					batch = append(batch, seq)
				default:
					break more
				}
			}
			if d.err != nil {
				continue // drain; the pipeline is stopping
			}
			if err := d.src.Delete(batch...); err != nil {
				d.err = fmt.Errorf("delete %d accepted messages: %w", len(batch), err)
				fail(d.err)
			}
		}
	}()
	return d
}

// add queues seq for deletion; it blocks while deleteBatch seqs wait.
func (d *deleter) add(seq uint64) { d.seqs <- seq }

// close waits until every queued seq was deleted and returns the first error.
func (d *deleter) close() error {
	close(d.seqs)
	<-d.done
	return d.err
}
