package acl

import "github.com/shadowgw/shadowgw/edge/message"

// MayReadCommands reports whether a device authenticated as user ("" for anonymous)
// may receive the commands queued for device id: an authenticated device its own;
// others as access lists them per user (exact ids and prefixes ending in "*",
// message.MatchAddress); an anonymous device without an entry any id, as MayTarget
// treats addresses. access is the [commands] rules, e.g. {"": anonymous-ids}.
func MayReadCommands(access map[string][]string, user, id string) bool {
	if user != "" && user == id {
		return true
	}
	patterns, ok := access[user]
	if !ok {
		return user == ""
	}
	for _, p := range patterns {
		if message.MatchAddress(p, id) {
			return true
		}
	}
	return false
}
