package edge

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/credential"
)

func TestTargetsPerDevice(t *testing.T) {
	hash, err := credential.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := startServer(t, Config{
		AllowAnonymous: true,
		Users:          map[string]string{"meter": hash},
		Targets:        map[string][]string{"meter": {"telemetry", "alarms/*"}, "": {"public"}},
	}, &memSink{})
	cases := []struct {
		name    string
		sasl    amqp.SASLType
		address string
		ok      bool
	}{
		{"user, exact address", amqp.SASLTypePlain("meter", "pw"), "telemetry", true},
		{"user, prefix", amqp.SASLTypePlain("meter", "pw"), "alarms/boiler", true},
		{"user, other address", amqp.SASLTypePlain("meter", "pw"), "billing", false},
		{"anonymous, its address", amqp.SASLTypeAnonymous(), "public", true},
		{"anonymous, other address", amqp.SASLTypeAnonymous(), "telemetry", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr, &amqp.ConnOptions{SASLType: tc.sasl})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := c.NewSession(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			snd, err := s.NewSender(ctx, tc.address, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("attach: %v", err)
				}
				if err := snd.Send(ctx, amqp.NewMessage([]byte("x")), nil); err != nil {
					t.Fatalf("send: %v", err)
				}
				return
			}
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondUnauthorizedAccess {
				t.Fatalf("attach = %v, want amqp:unauthorized-access", err)
			}
		})
	}
}

func TestAnonymousNetworks(t *testing.T) {
	hash, err := credential.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	addr, srv := startServer(t, Config{
		AllowAnonymous:    true,
		AnonymousNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Users:             map[string]string{"meter": hash},
	}, &memSink{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, opts := range []*amqp.ConnOptions{{SASLType: amqp.SASLTypeAnonymous()}, nil} {
		if c, err := amqp.Dial(ctx, "amqp://"+addr, opts); err == nil {
			c.Close()
			t.Fatalf("anonymous connection from 127.0.0.1 accepted with anonymous-networks 10.0.0.0/8 (opts %+v)", opts)
		}
	}
	c := dial(t, addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("meter", "pw")})
	newSender(t, c, "telemetry", nil)
	// The connection without SASL is refused by the server; go-amqp gives up on its own
	// when ANONYMOUS is not among the offered mechanisms.
	if got := srv.Stats().Refused; got < 1 {
		t.Fatalf("refused = %d, want at least 1", got)
	}
}
