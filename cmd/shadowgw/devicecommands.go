package main

import (
	"sync"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/store"
)

// Commands to devices (cloud → device): the uplink's receiver puts them in the
// store's device queues, the edge's sending links take them out. This file wires
// the two to the store.

// commandsFromConfig sets the components' settings for commands from [commands] and
// [uplink] commands.
func commandsFromConfig(cfg config.Config, gc *gatewayConfig) {
	c := cfg.Commands
	gc.Store.Commands = store.CommandOptions{
		DefaultTTL: c.DefaultTTL, MaxTTL: c.MaxTTL,
		MaxPerDevice: c.MaxPerDevice, MaxBytesPerDevice: c.MaxBytesPerDevice,
		MaxMessages: c.MaxMessages, MaxBytes: c.MaxBytes,
	}
	if len(c.AnonymousIDs) > 0 {
		gc.Edge.CommandAccess = map[string][]string{"": c.AnonymousIDs}
	}
	if gc.Uplink != nil {
		gc.Uplink.Commands = cfg.Uplink.Commands
	}
}

// storeCommands gives the edge's sending links the store's device queues.
type storeCommands struct{ st *store.Store }

// Watch forwards the store's signal for device to wake until stop is called; stop
// waits for the forwarding goroutine.
func (sc storeCommands) Watch(device string, wake func()) (stop func()) {
	w := sc.st.WatchCommands(device)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-w.C:
				wake()
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		w.Stop()
	}
}

func (sc storeCommands) Read(device string, after uint64, max int) ([]edge.Command, error) {
	cs, err := sc.st.ReadCommands(device, after, max)
	out := make([]edge.Command, len(cs))
	for i, c := range cs {
		out[i] = edge.Command{Seq: c.Seq, Payload: c.Payload}
	}
	return out, err
}

func (sc storeCommands) Settle(device string, seq uint64, o edge.Outcome, done func(error)) {
	switch o.Kind {
	case edge.Delivered:
		sc.st.DeleteCommand(device, seq, done)
	case edge.DeadLetter:
		sc.st.DeadLetterCommand(device, seq, o.Reason, done)
	case edge.Rewrite:
		sc.st.RewriteCommand(device, seq, o.Payload, done)
	default:
		done(nil)
	}
}
