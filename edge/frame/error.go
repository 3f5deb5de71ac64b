package frame

import "github.com/shadowgw/shadowgw/edge/codec"

// Error conditions the gateway sends (§2.8.15–§2.8.18, §5.3.3.6 for SASL codes).
const (
	ErrInternal              codec.Symbol = "amqp:internal-error"
	ErrNotFound              codec.Symbol = "amqp:not-found"
	ErrUnauthorizedAccess    codec.Symbol = "amqp:unauthorized-access"
	ErrDecode                codec.Symbol = "amqp:decode-error"
	ErrResourceLimitExceeded codec.Symbol = "amqp:resource-limit-exceeded"
	ErrNotAllowed            codec.Symbol = "amqp:not-allowed"
	ErrInvalidField          codec.Symbol = "amqp:invalid-field"
	ErrNotImplemented        codec.Symbol = "amqp:not-implemented"
	ErrPreconditionFailed    codec.Symbol = "amqp:precondition-failed"
	ErrIllegalState          codec.Symbol = "amqp:illegal-state"
	ErrConnectionForced      codec.Symbol = "amqp:connection:forced"
	ErrFramingError          codec.Symbol = "amqp:connection:framing-error"
	ErrWindowViolation       codec.Symbol = "amqp:session:window-violation"
	ErrErrantLink            codec.Symbol = "amqp:session:errant-link"
	ErrHandleInUse           codec.Symbol = "amqp:session:handle-in-use"
	ErrUnattachedHandle      codec.Symbol = "amqp:session:unattached-handle"
	ErrDetachForced          codec.Symbol = "amqp:link:detach-forced"
	ErrLinkStolen            codec.Symbol = "amqp:link:stolen"
	ErrTransferLimitExceeded codec.Symbol = "amqp:link:transfer-limit-exceeded"
	ErrMessageSizeExceeded   codec.Symbol = "amqp:link:message-size-exceeded"
)

// Error is the error type (§2.8.14, descriptor 0x1d). It is also a Go error.
type Error struct {
	Condition   codec.Symbol
	Description string
	Info        codec.Map
}

// Errorf is a shorthand for an *Error with a description.
func Errorf(cond codec.Symbol, desc string) *Error { return &Error{Condition: cond, Description: desc} }

func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return string(e.Condition) + ": " + e.Description
}

// Encode appends the described error.
func (e *Error) Encode(w *codec.Writer) {
	w.Descriptor(CodeError)
	m := w.BeginList()
	w.Symbol(e.Condition)
	n := 1
	if e.Description != "" || len(e.Info) > 0 {
		w.String(e.Description)
		n++
	}
	if len(e.Info) > 0 {
		_ = w.Value(e.Info)
		n++
	}
	w.EndList(m, n)
}

func decodeError(r *codec.Reader) (*Error, error) {
	d, err := r.Descriptor("error")
	if err != nil {
		return nil, err
	}
	f := r.Composite("error")
	if d != CodeError {
		f.Fail("", "descriptor is not amqp:error:list")
		return nil, f.Err()
	}
	e := &Error{}
	var ok bool
	if e.Condition, ok = f.Symbol("condition"); !ok {
		f.Fail("condition", "mandatory field missing")
	}
	e.Description, _ = f.String("description")
	e.Info = f.Map("info")
	return e, f.Done()
}

// decodeErrorField decodes an optional error field of a composite.
func decodeErrorField(f *codec.Fields) *Error {
	r, ok := f.Next()
	if !ok {
		return nil
	}
	e, err := decodeError(r)
	if err != nil {
		f.Fail("error", err.Error())
		return nil
	}
	return e
}
