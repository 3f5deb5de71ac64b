package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// idleConnWorkers is how many idle connections are opened at once.
const idleConnWorkers = 16

// holdIdle opens o.Idle device connections, each with a session and a sending link
// attached as a device that has nothing to say yet, holds them for o.Hold and reads the
// gateway's memory before and after.
func holdIdle(ctx context.Context, o options, r *report) error {
	sasl, err := deviceSASL(o)
	if err != nil {
		return err
	}
	before := readProc(o.GatewayPID)
	conns := make([]*amqp.Conn, o.Idle)
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	next := atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for range idleConnWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) || ctx.Err() != nil {
					return
				}
				c, err := openIdle(ctx, o, sasl, r.Run, i)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	opened := time.Since(start)
	defer func() {
		for _, c := range conns {
			if c != nil {
				wg.Go(func() { c.Close() })
			}
		}
		wg.Wait()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.Hold):
	}
	after := readProc(o.GatewayPID)
	ir := &idleReport{
		Connections: o.Idle - int(failed.Load()),
		Failed:      int(failed.Load()),
		OpenSeconds: opened.Seconds(),
		HoldSeconds: o.Hold.Seconds(),
	}
	if p := firstErr.Load(); p != nil {
		ir.FirstError = (*p).Error()
	}
	if before.ok && after.ok {
		ir.RSSBeforeBytes, ir.RSSAfterBytes, ir.PeakRSSBytes = before.rss, after.rss, after.peakRSS
		if ir.Connections > 0 && after.rss > before.rss {
			ir.BytesPerConnection = (after.rss - before.rss) / uint64(ir.Connections)
		}
	}
	r.Idle = ir
	return nil
}

// openIdle opens one idle device: connection, session, sending link.
func openIdle(ctx context.Context, o options, sasl amqp.SASLType, run string, i int) (*amqp.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := amqp.Dial(dctx, "amqp://"+o.Addr, &amqp.ConnOptions{SASLType: sasl, ContainerID: fmt.Sprintf("bench-%s-idle-%d", run, i)})
	if err != nil {
		return nil, err
	}
	s, err := c.NewSession(dctx, nil)
	if err == nil {
		_, err = s.NewSender(dctx, o.Address, nil)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
