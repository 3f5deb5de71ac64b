package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// A direct command link against the Proton test server in relay mode: credit
// mirrors what the device may take, outcomes reach the cloud sender, Close releases
// what is held.
func TestDirectCommandLink(t *testing.T) {
	s := cloudtest.StartProton(t)
	u, err := New(protonConfig(s), openStore(t, false), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetDirectCommands(cloudtest.RelayPrefix + "{device}"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	const dev = "d1"
	address := cloudtest.RelayPrefix + dev
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cloud, err := amqp.Dial(ctx, s.URL, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(),
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	cs, err := cloud.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := cs.NewSender(ctx, address, nil)
	if err != nil {
		t.Fatal(err)
	}
	var receipts []amqp.SendReceipt
	for i := range 3 {
		r, err := snd.SendWithReceipt(ctx, amqp.NewMessage(fmt.Appendf(nil, "m%d", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
	}
	s.WaitEvent(t, 10*time.Second, "3 held", func(e []cloudtest.Event) bool { return cloudtest.Count(e, "held", address) == 3 })

	woken := make(chan struct{}, 1)
	l := u.DirectCommands().Open(dev, func() {
		select {
		case woken <- struct{}{}:
		default:
		}
	})
	l.Credit(2, 0) // the device may take two
	read := func(want int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for len(l.Read(0, 10)) < want {
			select {
			case <-woken:
			case <-deadline:
				t.Fatalf("read %d of %d", len(l.Read(0, 10)), want)
			}
		}
	}
	read(2)
	// Only two: the third stays with the server.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n := len(l.Read(0, 10)); n != 2 {
			t.Fatalf("%d taken with credit 2", n)
		}
	}
	ms := l.Read(0, 10)
	l.Credit(0, ms[1].Seq) // both sent to the device, its credit used up
	l.Settle(ms[0].Seq, &amqp.StateAccepted{})
	l.Settle(ms[1].Seq, &amqp.StateRejected{Error: &amqp.Error{Condition: "app:no", Description: "not now"}})
	wait := func(i int) amqp.DeliveryState {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := receipts[i].Wait(wctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		return st
	}
	if _, ok := wait(0).(*amqp.StateAccepted); !ok {
		t.Errorf("message 0: %T", wait(0))
	}
	if st, ok := wait(1).(*amqp.StateRejected); !ok || st.Error == nil || st.Error.Condition != "app:no" || st.Error.Description != "not now" {
		t.Errorf("message 1: %+v", wait(1))
	}
	// One more credit: the third arrives; the device goes without settling it.
	l.Credit(1, ms[1].Seq)
	read(1)
	l.Close()
	if _, ok := wait(2).(*amqp.StateReleased); !ok {
		t.Errorf("message 2: %T, want released when the link closed", wait(2))
	}
	checkFor(t, 10*time.Second, func() bool { st := u.DirectCommands().Stats(); return st.Links == 0 && st.Attached == 0 },
		func() string { return fmt.Sprintf("stats after Close: %+v", u.DirectCommands().Stats()) })
	if st := u.DirectCommands().Stats(); st.Received != 3 || st.Settled != 2 || st.Released != 1 {
		t.Errorf("stats: %+v, want 3 received, 2 settled, 1 released", st)
	}
}
