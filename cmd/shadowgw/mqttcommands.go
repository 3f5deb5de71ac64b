package main

import (
	"sync"

	"github.com/shadowgw/shadowgw/edge/mqtt"
	"github.com/shadowgw/shadowgw/store"
)

// mqttCommands gives the MQTT server the store's device queues: the commands the
// uplink takes from the cloud reach MQTT subscribers from the same queues as AMQP
// devices (devicecommands.go is the AMQP side).
type mqttCommands struct{ st *store.Store }

// Watch forwards the store's signal for device to wake until stop is called; stop
// waits for the forwarding goroutine.
func (mc mqttCommands) Watch(device string, wake func()) (stop func()) {
	w := mc.st.WatchCommands(device)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-w.C:
				wake()
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		w.Stop()
	}
}

func (mc mqttCommands) Read(device string, after uint64, max int) ([]mqtt.Command, error) {
	cs, err := mc.st.ReadCommands(device, after, max)
	out := make([]mqtt.Command, len(cs))
	for i, c := range cs {
		out[i] = mqtt.Command{Seq: c.Seq, Expires: c.Expires, Payload: c.Payload}
	}
	return out, err
}

func (mc mqttCommands) Delivered(device string, seq uint64, done func(error)) {
	mc.st.DeleteCommand(device, seq, done)
}

func (mc mqttCommands) DeadLetter(device string, seq uint64, reason string, done func(error)) {
	mc.st.DeadLetterCommand(device, seq, reason, done)
}
