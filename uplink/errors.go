package uplink

import (
	"errors"
	"fmt"
	"strings"

	amqp "github.com/Azure/go-amqp"
)

// ErrConfig is wrapped by the errors of Config.Validate and New.
var ErrConfig = errors.New("invalid uplink configuration")

// errUndeliverable ends forwarding on a connection without a failure: only
// messages the cloud called undeliverable here are left (AMQP 1.0 §3.4.5).
var errUndeliverable = errors.New("messages undeliverable here")

// Why a settling goroutine has no outcome for a message; it stays stored.
var (
	errLinkGone = errors.New("the link failed before the outcome came")
	errStopped  = errors.New("forwarding stopped before the outcome came")
)

// cloudError is an error from the cloud with a readable text; it wraps the original.
type cloudError struct {
	text string
	err  error
}

func (e *cloudError) Error() string { return e.text }
func (e *cloudError) Unwrap() error { return e.err }

// readable returns err with a text fit for one log line: an AMQP error (§2.8.14) as
// "condition: description" instead of go-amqp's Go syntax, and a failed SASL outcome
// (§5.3.3.6) with what its code means.
func readable(err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return &cloudError{text: describeError(ae), err: err}
	}
	// go-amqp reports a SASL outcome other than ok only as text.
	msg := err.Error()
	if i := strings.Index(msg, "auth failed with code "); i >= 0 {
		code := strings.TrimRight(msg[i+len("auth failed with code "):], ": ")
		meaning := map[string]string{
			"0x1": "authentication failed: check the user and the password file",
			"0x2": "permanent system error on the broker",
			"0x3": "permanent system error on the broker",
			"0x4": "temporary system error on the broker",
		}[code]
		if meaning != "" {
			return &cloudError{text: fmt.Sprintf("SASL PLAIN refused (code %s): %s", code, meaning), err: err}
		}
	}
	return err
}
