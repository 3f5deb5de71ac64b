package edge

import (
	"strings"
	"testing"
)

func TestPeerText(t *testing.T) {
	if peerText(strings.Repeat("x", 1000)) == strings.Repeat("x", 1000) {
		t.Fatal("peerText did not shorten a 1000-byte text")
	}
}
