package edge

// maxPeerText bounds text a peer chose (error descriptions) in log lines.
const maxPeerText = 256

// peerText shortens s, which came from a device, for a log line.
func peerText(s string) string {
	if len(s) <= maxPeerText {
		return s
	}
	return s[:maxPeerText] + "…"
}
