package edge

import (
	"context"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/credential"
)

func TestSetAccess(t *testing.T) {
	cfg := usersConfig(t, false)
	addr, srv := startServer(t, cfg, &memSink{})
	hash, err := credential.Hash("other password")
	if err != nil {
		t.Fatal(err)
	}
	connects := func(user, password string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := amqp.Dial(ctx, "amqp://"+addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain(user, password)})
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	if !connects(plainUser, plainPassword) {
		t.Fatal("configured user refused before SetAccess")
	}
	// Keep one connection open across the change: it is not cut.
	open := dial(t, addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain(plainUser, plainPassword)})

	users := map[string]string{"pi-0043": hash}
	srv.SetAccess(users, map[string][]string{"pi-0043": {"allowed/*"}})
	users["pi-0044"] = hash // SetAccess copied the map
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{plainUser, plainPassword, false},
		{"pi-0043", "other password", true},
		{"pi-0043", plainPassword, false},
		{"pi-0044", "other password", false},
	} {
		if got := connects(tc.user, tc.password); got != tc.want {
			t.Errorf("after SetAccess: %s connects = %v, want %v", tc.user, got, tc.want)
		}
	}
	snd := newSender(t, open, "still-open", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := snd.Send(ctx, amqp.NewMessage([]byte("x")), nil); err != nil {
		t.Errorf("connection opened before SetAccess: send: %v", err)
	}
	// The new device's targets apply at once.
	c := dial(t, addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("pi-0043", "other password")})
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewSender(ctx, "elsewhere", nil); err == nil {
		t.Error("a device limited to allowed/* attached to elsewhere after SetAccess")
	}
	newSender(t, c, "allowed/x", nil)

	srv.SetAccess(nil, nil)
	if connects("pi-0043", "other password") {
		t.Error("after SetAccess(nil, nil): a user still connects")
	}
}
