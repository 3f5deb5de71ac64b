package uplink

import (
	"fmt"
	"strings"

	"github.com/shadowgw/shadowgw/store"
)

// Variables of an address template (Config.AddressTemplate).
const (
	// VarAddress is the target address the device sent to, as stored.
	VarAddress = "address"
	// VarDevice is who sent the message: the device's SASL user, its container-id
	// when it connected anonymously, or "input:NAME" for a sensor input: what the
	// SourceAnnotation holds.
	VarDevice = "device"
	// VarRoute is the name of the store's route that queued the message.
	VarRoute = "route"
)

// AddressTemplate makes the cloud address of a stored message, for clouds that
// expect one address per device behind a gateway: "telemetry/mytenant/{device}"
// sends each device's messages to an address of its own (Eclipse Hono's AMQP
// adapter wants telemetry/TENANT/DEVICE-ID from a gateway acting for its devices).
// Text outside braces is copied; {address}, {device} and {route} are replaced by the
// message's values (see VarAddress, VarDevice, VarRoute). A brace is written {{ or }}.
// The zero AddressTemplate is "{address}". It is safe for concurrent use.
type AddressTemplate struct {
	parts []templatePart
}

// templatePart is literal text, or a variable when name is not empty.
type templatePart struct {
	text, name string
}

// ParseAddressTemplate parses s; "" is "{address}". An unknown variable, an
// unclosed brace or a template without any variable is an error: every message would
// go to one address, which address-prefix says more plainly.
func ParseAddressTemplate(s string) (AddressTemplate, error) {
	if s == "" {
		return AddressTemplate{}, nil
	}
	var t AddressTemplate
	var lit strings.Builder
	vars := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case strings.HasPrefix(s[i:], "{{"), strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte(c)
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return AddressTemplate{}, fmt.Errorf("unclosed { at byte %d (write {{ for a brace)", i)
			}
			name := s[i+1 : i+end]
			switch name {
			case VarAddress, VarDevice, VarRoute:
			default:
				return AddressTemplate{}, fmt.Errorf("unknown variable {%s}: want {%s}, {%s} or {%s}", name, VarAddress, VarDevice, VarRoute)
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, templatePart{text: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, templatePart{name: name})
			vars++
			i += end
		case c == '}':
			return AddressTemplate{}, fmt.Errorf("unmatched } at byte %d (write }} for a brace)", i)
		default:
			lit.WriteByte(c)
		}
	}
	if vars == 0 {
		return AddressTemplate{}, fmt.Errorf("no variable: want {%s}, {%s} or {%s} (a fixed prefix is address-prefix)", VarAddress, VarDevice, VarRoute)
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, templatePart{text: lit.String()})
	}
	return t, nil
}

// Expand returns the template's address for m.
func (t AddressTemplate) Expand(m *store.Message) string {
	if t.parts == nil {
		return m.Address
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.name {
		case "":
			b.WriteString(p.text)
		case VarAddress:
			b.WriteString(m.Address)
		case VarDevice:
			b.WriteString(m.Source)
		case VarRoute:
			b.WriteString(m.Route)
		}
	}
	return b.String()
}

// cloudAddress is where m goes in the cloud: Config.AddressPrefix followed by the
// expanded Config.AddressTemplate.
func (u *Uplink) cloudAddress(m *storedMessage) string {
	return u.cfg.AddressPrefix + u.template.Expand(m)
}
