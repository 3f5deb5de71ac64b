// Package hw turns sensors wired to the gateway itself into messages in the gateway's
// store, beside the messages of network devices: I²C sensors (Bosch BME280 and BMP280,
// Sensirion SHT3x, TI ADS1115), DS18B20 1-Wire thermometers, and serial lines carrying
// JSON lines, CSV or NMEA 0183 from GPS receivers and microcontrollers.
//
// # Inputs
//
// An [Input] is one configured sensor or line, described by a [Spec]. Its Run method
// reads it until the context ends:
//
//   - Polled inputs (I²C and 1-Wire) take one reading every Spec.Interval. A sensor
//     that is missing or fails is closed and opened again after an exponential
//     backoff with jitter, and reported in [Status]; the bus is opened per attempt, so
//     a sensor plugged in later, or a bus enabled later, is found without a restart.
//   - Serial inputs are line-driven: every line that parses is a reading. When the
//     line fails (a USB adapter unplugged: EIO) or stays silent longer than
//     Spec.IdleTimeout, the port is closed and opened again with backoff until the
//     device is back.
//
// Lines that cannot be parsed and words whose checksum does not match (NMEA, SHT3x,
// DS18B20) are counted in Status and not stored. Each input runs in its own goroutine;
// one failing input never delays another, and nothing here touches the network side.
//
// # Messages
//
// A reading becomes an AMQP 1.0 message (part 3, §3.2) encoded with package codec:
//
//   - header: durable, so that brokers keep it across their restarts;
//   - message-annotations: x-opt-shadowgw-source = "input:NAME", the same annotation
//     the uplink sets from store.Message.Source (it replaces, not duplicates, it);
//   - properties: a message-id, subject NAME, content-type application/json and
//     creation-time;
//   - data: a JSON object with the input's name and kind, the time of the reading
//     (RFC 3339, UTC, milliseconds), its values and their units.
//
// For example:
//
//	{"input":"attic","kind":"bme280","time":"2025-03-01T12:00:00.000Z",
//	 "values":{"temperature":25.08,"pressure":1006.53,"humidity":46.33},
//	 "units":{"temperature":"°C","pressure":"hPa","humidity":"%RH"}}
//
// Run appends it to the store with Store.Append, which returns once the message is on
// disk; only then is the reading counted as stored.
//
// # Drivers
//
// The drivers are in the subpackages bme280, sht3x, ads1115 (on periph.io's i2c.Bus),
// ds18b20 (sysfs), nmea (parsing) and serial (termios). They do not log; Input logs
// state changes (sensor found, lost, recovered) at info or warn, once, and each
// unparsable line at debug.
package hw
