package acl

import "testing"

func TestMayReadCommands(t *testing.T) {
	access := map[string][]string{"": {"sensor-*", "pump"}, "gw": {"child-*"}}
	cases := []struct {
		name   string
		access map[string][]string
		user   string
		id     string
		want   bool
	}{
		{"own id", access, "alice", "alice", true},
		{"another id", access, "alice", "bob", false},
		{"listed prefix for a user", access, "gw", "child-1", true},
		{"unlisted for a user", access, "gw", "pump", false},
		{"anonymous, prefix", access, "", "sensor-9", true},
		{"anonymous, exact", access, "", "pump", true},
		{"anonymous, not listed", access, "", "valve", false},
		{"anonymous without rules", nil, "", "anything", true},
		{"user without rules", nil, "alice", "bob", false},
	}
	for _, tc := range cases {
		if got := MayReadCommands(tc.access, tc.user, tc.id); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
