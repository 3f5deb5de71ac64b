package uplink

import "errors"

// ErrConfig is wrapped by the errors of Config.Validate and New.
var ErrConfig = errors.New("invalid uplink configuration")

// Reasons for a forwarding pipeline to stop without a failure; the connection stays.
var (
	// errReleased: the cloud released or modified a message; send it again later.
	errReleased = errors.New("cloud released a message")
	// errLinkLimit: a new target needs a link but MaxLinks are open.
	errLinkLimit = errors.New("link limit reached")
)
