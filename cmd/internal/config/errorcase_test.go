package config

import (
	"slices"
	"strings"
	"testing"
)

// errorCase is a configuration file and the error lines Check reports for it.
type errorCase struct {
	name string
	text string
	want []string // nil: no error
}

// checkErrorCases writes each case as shadowgw.conf in the working directory and
// compares Check's error lines with the case's.
func checkErrorCases(t *testing.T, tests []errorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, "shadowgw.conf", tt.text, 0o644)
			_, err := Check("shadowgw.conf", Flags{})
			if got := errorLines(err); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
