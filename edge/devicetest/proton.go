package devicetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ExamplesDir is where Debian's libqpid-proton11-dev-examples installs the Proton C
// examples.
const ExamplesDir = "/usr/share/proton/examples/c"

// protonTimeout bounds one run of a Proton C example in RunProtonSend.
const protonTimeout = 60 * time.Second

// ProtonSend builds Debian's send.c example once per test process and returns the path
// of the program. The program takes the arguments host, port, address and count; it sends
// count unsettled messages whose message-id is the ulong n and whose body is an
// amqp-value map {"sequence": int n}, n from 1 to count, without SASL, and prints
// "COUNT messages sent and acknowledged" once all are accepted. Any other outcome, or an
// error from the peer, makes it exit with status 1.
//
// Built programs are kept in the user's cache directory, keyed by the source and the
// compiler flags, so later test processes reuse them.
func ProtonSend(t testing.TB) string {
	t.Helper()
	return protonExample(t, "send")
}

// ProtonSendAbort builds Debian's send-abort.c example, like ProtonSend. The program takes
// the same arguments. For each of count messages (80,000-byte bodies) it sends all but the
// last 1,000 bytes while it has link credit, and aborts the delivery (§2.6.14) at the next
// link-flow event (Proton raises one after writing, so no flow frame from the peer is
// needed); it prints "COUNT messages started and aborted" at the end. Each aborted
// delivery uses one credit, so the peer must keep granting credit.
func ProtonSendAbort(t testing.TB) string {
	t.Helper()
	return protonExample(t, "send-abort")
}

// ProtonSendSSL builds Debian's send-ssl.c example, like ProtonSend. The program takes
// host, port, address, count, user and password: it connects over TLS (without
// verifying the server), logs in with SASL PLAIN and sends count unsettled messages like
// send.c's. The load tool's cost benchmark uses it as the reference sender to a cloud
// broker.
func ProtonSendSSL(t testing.TB) string {
	t.Helper()
	return protonExample(t, "send-ssl")
}

// RunProtonSend runs a program from ProtonSend or ProtonSendAbort against host:port and
// returns its standard output. The error, for a non-zero exit or a time-out (60 s, after
// which the process is killed), includes the end of its standard error; standard error
// is logged when not empty, as it is with PN_TRACE_FRM=1 in the environment. The
// container-id the program announces is the program's base name ("send", "send-abort").
func RunProtonSend(t testing.TB, bin, host, port, address string, n int) (stdout string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), protonTimeout)
	defer cancel()
	return RunProtonSendContext(ctx, t, bin, host, port, address, n)
}

// RunProtonSendContext is RunProtonSend with the time limit of ctx: when ctx is done the
// process is killed.
func RunProtonSendContext(ctx context.Context, t testing.TB, bin, host, port, address string, n int) (stdout string, err error) {
	t.Helper()
	name := filepath.Base(bin)
	cmd := exec.CommandContext(ctx, bin, host, port, address, strconv.Itoa(n))
	cmd.Args[0] = name // send.c uses argv[0] as its container-id
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run() // when ctx is done, exec kills the process by its PID
	if errOut.Len() > 0 {
		t.Logf("%s stderr:\n%s", name, errOut.String())
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("killed: %w", ctx.Err())
	}
	if err != nil {
		return out.String(), fmt.Errorf("devicetest: %s %s %s %s %d: %w; stderr:\n%s",
			name, host, port, address, n, err, tail(errOut.String()))
	}
	return out.String(), nil
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // example name → *build

// protonExample builds ExamplesDir/name.c once per process and returns the program.
func protonExample(t testing.TB, name string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(name, new(build))
	b := v.(*build)
	b.once.Do(func() { b.path, b.err = buildExample(name) })
	if b.err != nil {
		unavailable(t, "Proton C example %s: %v", name, b.err)
	}
	return b.path
}

func buildExample(name string) (string, error) {
	src := filepath.Join(ExamplesDir, name+".c")
	code, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("%w (install libqpid-proton11-dev-examples)", err)
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			return "", errors.New("no C compiler: install gcc")
		}
	}
	flags := protonFlags()

	// The cache key covers what the program is made from; the library is linked
	// dynamically, so a Proton upgrade with the same example source needs no rebuild.
	h := sha256.New()
	h.Write(code)
	fmt.Fprintf(h, "\x00%s\x00%s", cc, strings.Join(flags, " "))
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	// The directory is named by the key and the program by the example, which send.c
	// announces as its container-id.
	dir = filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:16])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	bin := filepath.Join(dir, name)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o100 != 0 {
		return bin, nil
	}
	// Build into a temporary name and rename, so concurrent test processes never run a
	// half-written program.
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := append([]string{"-O2", "-o", tmp.Name(), src}, flags...)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %s: %w (install libqpid-proton11-dev):\n%s",
			cc, strings.Join(args, " "), err, tail(string(out)))
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// protonFlags returns the compiler and linker flags for Proton C, as pkg-config gives them:
// Debian 12 ships only libqpid-proton.pc (the library that holds both core and proactor).
func protonFlags() []string {
	for _, pkgs := range [][]string{
		{"libqpid-proton-core", "libqpid-proton-proactor"},
		{"libqpid-proton"},
	} {
		out, err := exec.Command("pkg-config", append([]string{"--cflags", "--libs"}, pkgs...)...).Output()
		if err == nil {
			return append(strings.Fields(string(out)), "-lpthread")
		}
	}
	return []string{"-lqpid-proton", "-lpthread"}
}

// cacheDir returns the directory that keeps built examples.
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "shadowgw-devicetest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	return dir, nil
}
