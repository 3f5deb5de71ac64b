package main

import (
	"github.com/shadowgw/shadowgw/edge/mqtt"
	"github.com/shadowgw/shadowgw/store"
)

// mqttCommands gives the MQTT server the store's device queues: the commands the
// uplink takes from the cloud reach MQTT subscribers from the same queues as AMQP
// devices (devicecommands.go is the AMQP side).
type mqttCommands struct{ st *store.Store }

// Watch is storeCommands.Watch: the same signal for both kinds of device.
func (mc mqttCommands) Watch(device string, wake func()) (stop func()) {
	return storeCommands{mc.st}.Watch(device, wake)
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
