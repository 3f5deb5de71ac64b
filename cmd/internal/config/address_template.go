package config

import (
	"strings"

	"github.com/shadowgw/shadowgw/uplink"
)

// validateSourceAnnotation checks [uplink] source-annotation with the uplink's own
// rule. Empty is refused here, not taken for the default: a line "source-annotation ="
// more likely means "none" than "the default".
func validateSourceAnnotation(key string, at func(field string, err error, format string, args ...any)) {
	if key == "" {
		at("source-annotation", nil, "is empty: want a symbol beginning with x-opt-, or %s", uplink.NoSourceAnnotation)
	} else if err := uplink.CheckSourceAnnotation(key); err != nil {
		at("source-annotation", nil, "%v", err)
	}
}

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
