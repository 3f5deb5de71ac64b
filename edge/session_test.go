package edge

import (
	"testing"

	"github.com/shadowgw/shadowgw/edge/frame"
)

// §2.5.6: the session keeps the device's incoming window for the gateway's own
// transfers, from the begin and from every flow.
func TestRemoteIncomingWindow(t *testing.T) {
	s, _ := bareSession(t) // begun with incoming-window 10
	if s.remoteInWindow != 10 || s.nextOutgoingID != 0 {
		t.Fatalf("after begin: remote-incoming-window %d, next-outgoing-id %d, want 10, 0", s.remoteInWindow, s.nextOutgoingID)
	}
	for _, tc := range []struct {
		name string
		flow frame.Flow
		want uint32
	}{
		{"flow", frame.Flow{NextIncomingID: 0, HasNextIncomingID: true, IncomingWindow: 5}, 5},
		{"without next-incoming-id", frame.Flow{IncomingWindow: 7}, 7},
		{"window closed", frame.Flow{NextIncomingID: 0, HasNextIncomingID: true}, 0},
	} {
		if err := s.onFlow(&tc.flow); err != nil {
			t.Fatal(err)
		}
		if s.remoteInWindow != tc.want {
			t.Errorf("%s: remote-incoming-window %d, want %d", tc.name, s.remoteInWindow, tc.want)
		}
	}
}

// The session's and the links' life is told by typed states: a session error ends the
// session and detaches its links; the device's end unmaps it.
func TestSessionStates(t *testing.T) {
	s, _ := bareSession(t)
	l := &link{handle: 0, state: linkAttached}
	s.links[0] = l
	if s.state != sessionMapped || l.detached() {
		t.Fatalf("new session %v, link detached %v", s.state, l.detached())
	}
	s.fail(frame.Errorf(frame.ErrWindowViolation, "test"))
	if s.state != sessionEnding || !l.detached() {
		t.Fatalf("after fail: session %v, link detached %v; want ending, detached", s.state, l.detached())
	}
	if err := s.handle(inFrame{body: &frame.End{}}); err != nil {
		t.Fatal(err)
	}
	if s.state != sessionEnded || s.c.sessions[s.channel] != nil {
		t.Fatalf("after the device's end: session %v, still mapped %v", s.state, s.c.sessions[s.channel] != nil)
	}
}
