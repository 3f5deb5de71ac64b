package config

import "fmt"

// Overrides returns the command-line overrides c was made with (see Flags.Apply), so that
// Check(c.File(), c.Overrides()) reads the configuration afresh exactly as it was read at
// start: what a reload on SIGHUP does. Paths given as flags stay as given, relative to
// the working directory.
func (c Config) Overrides() Flags {
	var f Flags
	for _, o := range overrides {
		if c.origins[key(o.section, o.field)].flag == "" {
			continue
		}
		v := *o.target(&c)
		*o.value(&f) = &v
	}
	return f
}

// Changes lists the values that differ between old and new, in the order String writes
// them: "[SECTION] KEY" for the sections without a name; for [device "NAME"],
// [input "NAME"] and [route "NAME"] sections, the section alone when it was added or
// removed, and `[device "NAME"] KEY` for a key that changed. The list names values,
// never shows them, so it may be logged.
func Changes(old, new Config) []string {
	var changed []string
	for _, s := range sections {
		for _, f := range s.fields {
			if f.get(&old) != f.get(&new) {
				changed = append(changed, fmt.Sprintf("[%s] %s", s.name, f.name))
			}
		}
	}
	deviceKeys := make([]string, len(deviceFields))
	deviceGet := func(d *Device) []string {
		v := make([]string, len(deviceFields))
		for i, f := range deviceFields {
			deviceKeys[i], v[i] = f.name, f.get(d)
		}
		return v
	}
	changed = append(changed, namedChanges(deviceSection, old.Devices, new.Devices,
		func(d *Device) string { return d.Name }, deviceGet, deviceKeys)...)
	inputKeys := make([]string, len(inputFields))
	inputGet := func(in *Input) []string {
		v := make([]string, len(inputFields))
		for i, f := range inputFields {
			inputKeys[i], v[i] = f.name, f.get(in)
		}
		return v
	}
	changed = append(changed, namedChanges(inputSection, old.Inputs, new.Inputs,
		func(in *Input) string { return in.Name }, inputGet, inputKeys)...)
	routeKeys := make([]string, len(routeFields))
	routeGet := func(r *Route) []string {
		v := make([]string, len(routeFields))
		for i, f := range routeFields {
			routeKeys[i], v[i] = f.name, f.get(r)
		}
		return v
	}
	changed = append(changed, namedChanges(routeSection, old.Routes, new.Routes,
		func(r *Route) string { return r.Name }, routeGet, routeKeys)...)
	return changed
}

// namedChanges compares the repeated sections of one kind by name: those in new, in its
// order, that were added or have keys that changed, then those removed.
func namedChanges[T any](section string, old, new []T, name func(*T) string, values func(*T) []string, keys []string) []string {
	var changed []string
	header := func(n string) string { return fmt.Sprintf("[%s %q]", section, n) }
	prev := make(map[string][]string, len(old))
	for i := range old {
		prev[name(&old[i])] = values(&old[i])
	}
	for i := range new {
		n := name(&new[i])
		was, ok := prev[n]
		delete(prev, n)
		if !ok {
			changed = append(changed, header(n))
			continue
		}
		for j, v := range values(&new[i]) {
			if v != was[j] {
				changed = append(changed, header(n)+" "+keys[j])
			}
		}
	}
	for i := range old {
		if n := name(&old[i]); prev[n] != nil {
			changed = append(changed, header(n))
			delete(prev, n)
		}
	}
	return changed
}
