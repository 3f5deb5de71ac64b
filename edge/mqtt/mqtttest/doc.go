// Package mqtttest runs real MQTT clients from Debian against the gateway in tests:
// Eclipse Paho for Python (python3-paho-mqtt, run with /usr/bin/python3) and
// mosquitto_pub (mosquitto-clients). publisher.py publishes numbered messages
// (StartPublisher); subscriber.py receives commands and can die before a PUBACK
// (RunSubscriber). A test that needs a client that is not installed is skipped,
// unless the environment sets SHADOWGW_REQUIRE_PEERS=1, as CI does, in which case it
// fails.
package mqtttest
