package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shadowgw/shadowgw/store"
)

// A producer appends; a forwarder waits on Notify, reads in order and deletes
// what the cloud accepted.
func Example() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "queue.db"), store.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	for _, body := range []string{"21.5", "21.7"} {
		m := store.Message{Address: "telemetry", Source: "pi-1", Payload: []byte(body)}
		if err := s.Append(context.Background(), &m); err != nil {
			panic(err)
		}
	}

	<-s.Notify()
	msgs, err := s.Read(0, 100)
	if err != nil {
		panic(err)
	}
	for _, m := range msgs {
		fmt.Printf("%d %s %s\n", m.Seq, m.Address, m.Payload)
		if err := s.Delete(m.Seq); err != nil { // after the cloud accepted it
			panic(err)
		}
	}
	fmt.Println("queued:", s.Stats().Messages)
	// Output:
	// 1 telemetry 21.5
	// 2 telemetry 21.7
	// queued: 0
}
