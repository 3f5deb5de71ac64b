package cloudtest

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// QueueDepth returns the number of messages in the queue name (without "/queue/"), ready
// and unacknowledged, as rabbitmqctl reports them: what the broker still holds, read
// without consuming anything. A queue that does not exist has 0.
func (b *Broker) QueueDepth(t testing.TB, name string) int {
	t.Helper()
	cmd := exec.Command(filepath.Join(b.scripts, "rabbitmqctl"), "-n", b.nodeName, "-q", "list_queues", "name", "messages")
	cmd.Dir = b.Dir
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cloudtest: rabbitmqctl list_queues: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == name {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("cloudtest: rabbitmqctl list_queues: %q", line)
			}
			return n
		}
	}
	return 0
}
