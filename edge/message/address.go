package message

import "strings"

// MatchAddress reports whether address matches pattern: an exact address, or a prefix
// ending in "*" ("alarms/*") that matches every address starting with it.
func MatchAddress(pattern, address string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(address, prefix)
	}
	return pattern == address
}
