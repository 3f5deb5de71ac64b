package uplink

import "sync"

// tokenBytes is how many payload bytes one token of the send window covers: a
// message takes one token, and one more for each tokenBytes of its stored payload,
// which its lane keeps until the outcome (for a modified outcome to rewrite). So the
// payloads held for the cloud's outcomes stay under InFlight × tokenBytes (16 MiB at
// the default 512) whatever the messages' size, while small messages, the usual
// ones, take one token each.
const tokenBytes = 32 << 10

// window is the lanes' send window (Config.InFlight tokens), shared by every lane of
// a connection: a lane's sender takes a message's tokens before it sends it and its
// settler gives them back with the outcome.
type window struct {
	tokens chan struct{}
	// multi serializes the takers of several tokens: two of them each holding part
	// of what they need could otherwise wait for each other forever. A taker of one
	// token never waits for anyone who holds a token and waits too.
	multi sync.Mutex
}

func newWindow(size int) *window {
	return &window{tokens: make(chan struct{}, size)}
}

// size returns the window's size in tokens.
func (w *window) size() int { return cap(w.tokens) }

// cost returns the tokens a message of payload bytes takes: at most the whole
// window, so that a message larger than it is sent alone.
func (w *window) cost(payload int) int {
	return min(1+payload/tokenBytes, cap(w.tokens))
}

// take takes n tokens, waiting for them; it returns false, holding none, if done is
// closed first.
func (w *window) take(n int, done <-chan struct{}) bool {
	if n == 1 {
		select {
		case w.tokens <- struct{}{}:
			return true
		case <-done:
			return false
		}
	}
	w.multi.Lock()
	defer w.multi.Unlock()
	for i := range n {
		select {
		case w.tokens <- struct{}{}:
		case <-done:
			w.give(i)
			return false
		}
	}
	return true
}

// give gives n tokens back.
func (w *window) give(n int) {
	for range n {
		<-w.tokens
	}
}
