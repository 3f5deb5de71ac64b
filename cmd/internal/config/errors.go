package config

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// ErrNoPasswordFile is returned by UplinkPassword when [uplink] password-file is not set.
var ErrNoPasswordFile = errors.New("no uplink password-file configured")

// errBadQuote is the problem with a quoted value that does not end or has an unknown
// escape.
var errBadQuote = errors.New(`unterminated or malformed quoted value (escapes are \" \\ \n \t)`)

// Error is one problem in a configuration: where the faulty value came from, which field
// it is, and what is wrong with it.
type Error struct {
	File    string // configuration file, or "" for a default or flag value
	Line    int    // 1-based line in File, or 0
	Flag    string // command-line flag (without dashes) that supplied the value, or ""
	Section string // section as written between brackets: `edge`, `device "sensor-1"`
	Field   string // key within the section, or "" for the section itself
	Msg     string // what is wrong, lowercase, no trailing punctuation
	Err     error  // underlying cause, or nil
}

// Error formats the problem on one line, for example
//
//	shadowgw.conf:12: [uplink] url: scheme must be amqps (TLS), got "amqp"
//	flag --uplink-ca: [uplink] ca: open ca.pem: no such file or directory
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Flag != "":
		b.WriteString("flag --" + e.Flag + ": ")
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	}
	if e.Section != "" {
		b.WriteString("[" + e.Section + "] ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in a configuration, in file order. Load, Validate and
// Check return a non-empty Errors (never a nil Errors in a non-nil error); use errors.As
// to get at the individual problems.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so errors.Is and errors.As look into each of them.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// sortErrors orders problems by line, problems without a line (flags, defaults) last,
// keeping the order of discovery among equals.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
}

// orNil returns es as an error, or nil when it is empty: a nil Errors stored in an error
// interface would not compare equal to nil.
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}
