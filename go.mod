module github.com/shadowgw/shadowgw

go 1.25.0

require (
	github.com/Azure/go-amqp v1.7.0
	go.etcd.io/bbolt v1.5.0
)

require golang.org/x/sys v0.45.0 // indirect
