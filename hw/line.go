package hw

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/shadowgw/shadowgw/hw/backoff"
	"io"
	"os"
	"time"

	"github.com/shadowgw/shadowgw/hw/serial"
)

// maxLine is the longest line accepted from a serial line; longer ones are counted as
// unparsable and skipped up to their end.
const maxLine = 4096

// badLinesWarning is how many unparsable lines in a row earn a warning about the
// line's settings.
const badLinesWarning = 10

// runSerial opens the line, reads it line by line and stores each reading, until ctx
// is done. When the line fails or stays silent too long, it is closed and opened
// again after the backoff; the backoff starts over once a line was read.
func (in *Input) runSerial(ctx context.Context, st Store) {
	bo := &backoff.Backoff{Min: in.opts.BackoffMin, Max: in.opts.BackoffMax, Rand: in.opts.Rand}
	for ctx.Err() == nil {
		p, err := serial.Open(in.spec.Device, in.spec.Serial)
		if err != nil {
			if !in.wait(ctx, in.failed(err, bo)) {
				return
			}
			continue
		}
		in.st.update(func(s *Status) { s.Opens++; s.Open = true })
		in.log.Info("serial line open", "device", in.spec.Device, "setting", in.spec.Serial.String())
		seen := false // a line arrived since the line was opened
		err = in.readLines(ctx, p, func(line []byte) {
			if !seen {
				in.working(bo)
				seen = true
			}
			r, err := in.parseLine(line, in.opts.Clock.Now())
			if err != nil {
				in.rejected(line, err)
				return
			}
			in.badLines = 0
			in.deliver(ctx, st, r)
		})
		p.Close()
		if ctx.Err() != nil {
			return
		}
		if !in.wait(ctx, in.failed(err, bo)) {
			return
		}
	}
}

// rejected counts a line that is not a reading and logs it at debug; many unparsable
// lines in a row earn one warning.
func (in *Input) rejected(line []byte, err error) {
	in.count(err)
	if errors.Is(err, errSkip) {
		return
	}
	in.log.Debug("line rejected", "err", err, "line", string(bytes.TrimSpace(line)))
	if in.badLines++; in.badLines == badLinesWarning {
		in.log.Warn("lines keep failing to parse: check baud, framing and format", "lines", in.badLines, "err", err)
	}
}

// readLines calls handle with each complete line read from p (without its line
// break) until reading fails, ctx ends (returns ctx.Err()) or no line arrives within
// Spec.IdleTimeout.
func (in *Input) readLines(ctx context.Context, p *serial.Port, handle func([]byte)) error {
	stop := context.AfterFunc(ctx, func() { p.Close() })
	defer stop()
	br := bufio.NewReaderSize(p, maxLine)
	long := false // in the middle of a line that is too long
	for {
		if in.spec.IdleTimeout > 0 {
			// The deadline is the kernel's, so it uses the real clock.
			p.SetReadDeadline(time.Now().Add(in.spec.IdleTimeout))
		}
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !long {
				in.rejected(line, fmt.Errorf("line longer than %d bytes", maxLine))
			}
			long = true
			continue
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("no line from %s for %v", in.spec.Device, in.spec.IdleTimeout)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%s: end of file (device gone?)", in.spec.Device)
		case err != nil:
			return fmt.Errorf("read %s: %w", in.spec.Device, err)
		case long:
			long = false // the end of the long line
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		handle(line)
	}
}

// readLineOnce opens the line and returns the first reading, for ReadOnce.
func (in *Input) readLineOnce(ctx context.Context) (Reading, error) {
	p, err := serial.Open(in.spec.Device, in.spec.Serial)
	if err != nil {
		return Reading{}, err
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		r        Reading
		found    bool
		rejected int
		lastErr  error
	)
	err = in.readLines(ctx, p, func(line []byte) {
		if found {
			return
		}
		var perr error
		if r, perr = in.parseLine(line, in.opts.Clock.Now()); perr == nil {
			found = true
			cancel()
			return
		}
		if !errors.Is(perr, errSkip) {
			rejected++
			lastErr = perr
		}
	})
	switch {
	case found:
		return r, nil
	case rejected > 0:
		return Reading{}, fmt.Errorf("no reading from %s (%v); %d lines rejected, the last: %v", in.spec.Device, err, rejected, lastErr)
	}
	return Reading{}, fmt.Errorf("no reading from %s: %w", in.spec.Device, err)
}
