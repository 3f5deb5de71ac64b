package hw

import (
	"context"
	"errors"
	"fmt"
	"github.com/shadowgw/shadowgw/hw/backoff"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/shadowgw/shadowgw/store"
)

// Store is where inputs put their messages; *store.Store implements it. Append must
// return once the message is durable.
type Store interface {
	Append(ctx context.Context, m *store.Message) error
}

// Options are what an Input needs besides its Spec. The zero value is usable.
type Options struct {
	// Logger receives the input's state changes; nil discards them.
	Logger *slog.Logger

	// BackoffMin and BackoffMax bound the delay before an input that failed is tried
	// again; defaults 1 s and 1 min.
	BackoffMin, BackoffMax time.Duration

	// Clock and Rand (uniform in [0, 1), for the backoff's jitter) are for tests;
	// nil means the real ones.
	Clock Clock
	Rand  func() float64

	// OpenBus opens an I²C bus by name; nil means the Linux bus device through
	// periph.io's sysfs driver (OpenI2C). Tests pass an i2ctest.Playback.
	OpenBus func(name string) (i2c.BusCloser, error)
}

// Input is one configured sensor or serial line. Run reads it; Status may be called
// from any goroutine at any time.
type Input struct {
	spec Spec
	opts Options
	log  *slog.Logger
	st   status

	// Owned by the Run goroutine.
	lastStored map[string]time.Time // time of the last stored reading, by Reading.Type
	badLines   int                  // lines in a row that did not parse
}

// New returns an Input for spec, with its defaults filled in. It does no I/O; a sensor
// that is missing is found (or reported) by Run.
func New(spec Spec, opts Options) (*Input, error) {
	spec = spec.withDefaults()
	if err := spec.check(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = time.Second
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(time.Minute, opts.BackoffMin)
	}
	if opts.Clock == nil {
		opts.Clock = backoff.System{}
	}
	if opts.OpenBus == nil {
		opts.OpenBus = OpenI2C
	}
	in := &Input{
		spec:       spec,
		opts:       opts,
		log:        opts.Logger.With("component", "hw", "input", spec.Name),
		lastStored: make(map[string]time.Time),
	}
	in.st.s = Status{Name: spec.Name, Kind: spec.Kind, Target: spec.Target, What: spec.describe()}
	return in, nil
}

// Spec returns the input's Spec, defaults filled in.
func (in *Input) Spec() Spec { return in.spec }

// Status returns a snapshot of the input's state and counters.
func (in *Input) Status() Status { return in.st.get() }

// Run reads the input and appends its readings to st until ctx is done, then returns
// nil. Failures are retried with backoff and reported in Status; they never end Run.
func (in *Input) Run(ctx context.Context, st Store) error {
	in.log.Info("input starting", "reads", in.spec.describe(), "target", in.spec.Target)
	if in.spec.Kind.Polled() {
		in.runPolled(ctx, st)
	} else {
		in.runSerial(ctx, st)
	}
	return nil
}

// Run runs every input until ctx is done, each in its own goroutine, and returns nil
// once all have stopped.
func Run(ctx context.Context, inputs []*Input, st Store) error {
	var wg sync.WaitGroup
	for _, in := range inputs {
		wg.Go(func() { in.Run(ctx, st) })
	}
	wg.Wait()
	return nil
}

// ReadOnce takes one reading, for wiring checks: a polled sensor is opened, read and
// closed; a serial line is opened and read until a line parses or ctx ends. Nothing is
// stored and Status is not changed.
func (in *Input) ReadOnce(ctx context.Context) (Reading, error) {
	if in.spec.Kind.Polled() {
		s, err := in.openSensor()
		if err != nil {
			return Reading{}, err
		}
		defer s.close()
		t := in.opts.Clock.Now()
		vals, err := s.read()
		if err != nil {
			return Reading{}, err
		}
		return Reading{Time: t, Values: vals}, nil
	}
	return in.readLineOnce(ctx)
}

// wait returns after d, or false at once when ctx ends first.
func (in *Input) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-in.opts.Clock.After(d):
		return ctx.Err() == nil
	}
}

// failed records a failure to open or read and returns the delay before the next try.
func (in *Input) failed(err error, bo *backoff.Backoff) time.Duration {
	d := bo.Next()
	now := in.opts.Clock.Now()
	var first bool
	in.st.update(func(s *Status) {
		first = s.Failures == 0
		s.Open = false
		s.Errors++
		s.Failures++
		s.LastError, s.LastErrorAt = err.Error(), now
		s.NextRetry = now.Add(d)
	})
	if first {
		in.log.Warn("input failing; retrying with backoff", "err", err, "retry_in", d.Round(time.Millisecond))
	} else {
		in.log.Debug("input still failing", "err", err, "retry_in", d.Round(time.Millisecond))
	}
	return d
}

// working records a successful open or read, after failures if there were some.
func (in *Input) working(bo *backoff.Backoff) {
	bo.Reset()
	var failures int
	in.st.update(func(s *Status) {
		failures = s.Failures
		s.Open, s.Failures, s.NextRetry = true, 0, time.Time{}
	})
	if failures > 0 {
		in.log.Info("input recovered", "after_failures", failures)
	}
}

// deliver stores a reading, unless it comes within Spec.Interval of the last stored
// reading of its type on a line-driven input.
func (in *Input) deliver(ctx context.Context, st Store, r Reading) {
	if !in.spec.Kind.Polled() && in.spec.Interval > 0 {
		if last, ok := in.lastStored[r.Type]; ok && r.Time.Sub(last) < in.spec.Interval && r.Time.After(last) {
			in.st.update(func(s *Status) { s.Skipped++ })
			return
		}
	}
	m, err := in.Message(r)
	if err == nil {
		err = st.Append(ctx, m)
	}
	if err != nil {
		if ctx.Err() != nil {
			return // stopping: the reading may or may not be stored
		}
		now := in.opts.Clock.Now()
		in.st.update(func(s *Status) {
			s.StoreErrors++
			s.LastError, s.LastErrorAt = fmt.Sprintf("store: %v", err), now
		})
		in.log.Warn("reading not stored", "err", err)
		return
	}
	in.lastStored[r.Type] = r.Time
	in.st.update(func(s *Status) {
		s.Readings++
		s.LastReading = r
	})
	in.log.Debug("reading stored", "seq", m.Seq, "reading", r.String())
}

// count records a line or word that was not a reading.
func (in *Input) count(err error) {
	now := in.opts.Clock.Now()
	in.st.update(func(s *Status) {
		switch {
		case errors.Is(err, errSkip):
			s.Skipped++
			return
		case isChecksum(err):
			s.ChecksumErrors++
		default:
			s.ParseErrors++
		}
		s.LastError, s.LastErrorAt = err.Error(), now
	})
}
