package uplink

import (
	"errors"
	"fmt"
	"io"
	"testing"

	amqp "github.com/Azure/go-amqp"
)

func TestReadable(t *testing.T) {
	unauthorized := &amqp.Error{Condition: amqp.ErrCondUnauthorizedAccess, Description: "ACCESS_REFUSED - no"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"amqp error", fmt.Errorf("attach: %w", unauthorized), "amqp:unauthorized-access: ACCESS_REFUSED - no"},
		{"amqp error without description", &amqp.Error{Condition: amqp.ErrCondNotFound}, "amqp:not-found"},
		{"sasl auth", errors.New("SASL PLAIN auth failed with code 0x1: "), "SASL PLAIN refused (code 0x1): authentication failed: check the user and the password file"},
		{"sasl temporary", errors.New("SASL PLAIN auth failed with code 0x4: "), "SASL PLAIN refused (code 0x4): temporary system error on the broker"},
		{"other", io.EOF, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readable(tt.err)
			if got.Error() != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !errors.Is(got, tt.err) && !errors.Is(got, unauthorized) {
				t.Errorf("%v does not wrap %v", got, tt.err)
			}
		})
	}
	if readable(nil) != nil {
		t.Error("readable(nil) is not nil")
	}
}
