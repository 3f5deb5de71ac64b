package uplink

import (
	"errors"
	"fmt"
	"strings"

	amqp "github.com/Azure/go-amqp"
)

// ErrConfig is wrapped by the errors of Config.Validate and New.
var ErrConfig = errors.New("invalid uplink configuration")

// Reasons for a forwarding pipeline to stop without a failure; the connection stays.
var (
	// errRetry: read the store again from the start: a held address is due, an
	// address that was passed by has credit again, or a damaged record was put
	// aside.
	errRetry = errors.New("read the store again")
	// errUndeliverable: only messages the cloud called undeliverable here are left.
	errUndeliverable = errors.New("messages undeliverable here")
	// errHeld: the message's address is held; it stays stored.
	errHeld = errors.New("address held")
	// errLinkLimit: targets needed links beyond MaxLinks; the others were sent.
	errLinkLimit = errors.New("link limit reached")
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
