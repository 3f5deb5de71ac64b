package hw

import "github.com/shadowgw/shadowgw/hw/backoff"

// Clock is the time source of an Input; tests inject one.
type Clock = backoff.Clock
