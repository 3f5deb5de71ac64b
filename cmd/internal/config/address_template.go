package config

import (
	"strings"

	"github.com/shadowgw/shadowgw/uplink"
)

// validateAddressTemplate checks [uplink] address-template with the uplink's own
// parser, so that check and run agree on what a template means.
func validateAddressTemplate(template string, at func(field string, err error, format string, args ...any)) {
	if strings.ContainsFunc(template, isControl) {
		at("address-template", nil, "contains a control character")
		return
	}
	if _, err := uplink.ParseAddressTemplate(template); err != nil {
		at("address-template", nil, "%v", err)
	}
}
