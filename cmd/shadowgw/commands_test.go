package main

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/store"
)

const routesConf = `[store]
when-full = drop-oldest
default-ttl = 12h

[route "alarms"]
addresses = alarms/*
priority = 10
when-full = backpressure

[route "telemetry"]
addresses = telemetry, sensors/*
max-messages = 50
default-ttl = 0s

[route "default"]
priority = -1
max-bytes = 1MiB
`

// TestGatewayFromConfigRoutes: the [route] sections become the store's routes, with
// [store] when-full and default-ttl where a route leaves them unset.
func TestGatewayFromConfigRoutes(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Check(writeConfig(t, filepath.Join(dir, "shadowgw.conf"), routesConf), config.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := gatewayFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Route{
		{Name: "alarms", Addresses: []string{"alarms/*"}, Priority: 10, WhenFull: store.Backpressure, DefaultTTL: 12 * time.Hour},
		{Name: "telemetry", Addresses: []string{"telemetry", "sensors/*"}, MaxMessages: 50, WhenFull: store.DropOldest},
		{Name: "default", Priority: -1, MaxBytes: 1 << 20, WhenFull: store.DropOldest, DefaultTTL: 12 * time.Hour},
	}
	if !reflect.DeepEqual(gc.Store.Routes, want) {
		t.Errorf("store routes =\n%+v\nwant\n%+v", gc.Store.Routes, want)
	}
	if gc.Store.WhenFull != store.DropOldest || gc.Store.DefaultTTL != 12*time.Hour {
		t.Errorf("store options: when-full %v, default TTL %v", gc.Store.WhenFull, gc.Store.DefaultTTL)
	}

	// Without [route] sections the store gets none and makes its default route.
	gc, err = gatewayFromConfig(config.Default())
	if err != nil || gc.Store.Routes != nil {
		t.Errorf("default configuration: routes %+v, err %v; want none", gc.Store.Routes, err)
	}
}

// TestCheckShowsRoutes: `shadowgw check` prints the routes with the rest of the
// configuration, and reports route problems with file and line.
func TestCheckShowsRoutes(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, filepath.Join(dir, "shadowgw.conf"), routesConf)
	var out, errOut bytes.Buffer
	if err := cmdCheck([]string{"--config", conf}, &out, &errOut); err != nil {
		t.Fatalf("check: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"[route \"alarms\"]\naddresses = alarms/*\npriority = 10\nmax-bytes = 0\nmax-messages = 0\nwhen-full = backpressure\ndefault-ttl =\n",
		"[route \"telemetry\"]\naddresses = telemetry, sensors/*\npriority = 0\nmax-bytes = 0\nmax-messages = 50\nwhen-full =\ndefault-ttl = 0s\n",
		"[route \"default\"]\npriority = -1\nmax-bytes = 1MiB\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks\n%s\nin\n%s", want, out.String())
		}
	}

	bad := writeConfig(t, filepath.Join(dir, "bad.conf"), routesConf+"[route \"more\"]\naddresses = telemetry\n")
	out.Reset()
	errOut.Reset()
	err := cmdCheck([]string{"--config", bad}, &out, &errOut)
	if want := bad + `:19: [route "more"] addresses: "telemetry" is already taken by [route "telemetry"] (line 11)`; err == nil || !strings.Contains(errOut.String(), want) {
		t.Errorf("check of a route conflict: %v\n%s\nwant %s", err, errOut.String(), want)
	}
}
