package credential

import "errors"

var (
	// ErrMalformed is wrapped by every error about a hash string that cannot be parsed.
	ErrMalformed = errors.New("malformed password hash")

	// ErrEmptyPassword is returned by Hash for an empty password.
	ErrEmptyPassword = errors.New("empty password")
)
