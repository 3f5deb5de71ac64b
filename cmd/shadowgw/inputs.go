package main

import (
	"context"
	"fmt"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/hw"
	"github.com/shadowgw/shadowgw/hw/ads1115"
)

// inputsSidecar returns the sidecar that reads the sensors and serial lines of the
// [input "NAME"] sections and stores their readings beside the devices' messages
// (package hw), or nil when there is no [input] section.
func inputsSidecar(cfg config.Config) (sidecar, error) {
	if len(cfg.Inputs) == 0 {
		return nil, nil
	}
	specs := inputSpecs(cfg)
	for _, s := range specs { // the checks of run time, now, without I/O
		if _, err := hw.New(s, hw.Options{}); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context, p parts) error {
		ins := make([]*hw.Input, len(specs))
		for i, s := range specs {
			in, err := hw.New(s, hw.Options{Logger: p.Log})
			if err != nil {
				return err
			}
			ins[i] = in
		}
		p.Inputs.set(func() []inputStatus { return statusOfInputs(ins) })
		defer p.Inputs.set(nil)
		return hw.Run(ctx, ins, p.Store)
	}, nil
}

// statusOfInputs summarises the inputs for the status page (status.go).
func statusOfInputs(ins []*hw.Input) []inputStatus {
	out := make([]inputStatus, len(ins))
	for i, in := range ins {
		s := in.Status()
		state := "ok"
		switch {
		case s.Failures > 0:
			state = "failing"
		case !s.Open:
			state = "starting"
		}
		out[i] = inputStatus{
			Name:       s.Name,
			Kind:       string(s.Kind),
			State:      state,
			LastSample: s.LastReading.Time,
			Samples:    s.Readings,
			LastError:  s.LastError,
		}
	}
	return out
}

// inputSpecs turns the validated [input] sections into hw specs.
func inputSpecs(cfg config.Config) []hw.Spec {
	specs := make([]hw.Spec, len(cfg.Inputs))
	for i, in := range cfg.Inputs {
		specs[i] = inputSpec(in)
	}
	return specs
}

func inputSpec(in config.Input) hw.Spec {
	s := hw.Spec{
		Name:     in.Name,
		Kind:     hw.Kind(in.Kind),
		Target:   in.Target,
		Interval: in.Interval,
		Bus:      in.Bus,
		Addr:     in.Address,
		Device:   in.Device,
		W1Dir:    in.W1Dir,
	}
	switch s.Kind {
	case hw.ADS1115:
		s.ADC = ads1115.Config{Mux: in.Mux, Gain: in.Gain, DataRate: in.DataRate}
	case hw.Serial:
		s.Serial = in.SerialConfig()
		s.Format = hw.Format(in.Format)
		s.CSVHeader = in.CSVHeader
		s.Units = in.UnitMap()
		s.IdleTimeout = in.IdleTimeout
	}
	return s
}

// findInput returns the [input] section called name.
func findInput(cfg config.Config, name string) (config.Input, error) {
	var names []string
	for _, in := range cfg.Inputs {
		if in.Name == name {
			return in, nil
		}
		names = append(names, in.Name)
	}
	if len(names) == 0 {
		where := "the configuration"
		if cfg.File() != "" {
			where = cfg.File()
		}
		return config.Input{}, fmt.Errorf("no [input \"NAME\"] section in %s (give the file with --config)", where)
	}
	return config.Input{}, fmt.Errorf("no input %q; the inputs are %q", name, names)
}
