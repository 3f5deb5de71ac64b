package cloudtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Broker is a private RabbitMQ node started by [StartRabbitMQ]. Its exported fields
// describe how to reach it and must not be changed.
type Broker struct {
	// URL is "amqps://127.0.0.1:PORT". The port stays the same across Stop and Start.
	URL string
	// Addr is the TLS listener's "127.0.0.1:PORT".
	Addr string

	// Certificates are the PEM files: CAFile signed the server's certificate, ClientCert
	// is accepted for SASL EXTERNAL as the user ClientName (the same as User).
	Certificates

	// User and Password may configure, write and read everything on vhost "/".
	User, Password string
	// RestrictedUser and RestrictedPassword may log in and read every queue, but may not
	// configure (declare) or write anything: attaching a sender to "/queue/NAME" is
	// refused with amqp:unauthorized-access, which RabbitMQ reports by ending the session.
	RestrictedUser, RestrictedPassword string

	// Dir holds the node's configuration, data (mnesia), logs and certificates.
	Dir string

	t        testing.TB
	cfg      config
	scripts  string // directory holding rabbitmq-server
	epmdPath string
	nodeName string
	port     int
	env      []string
	logFile  string // rabbitmq-server's stdout and stderr, across restarts
	nodeLog  string // the node's own log file

	epmd     *exec.Cmd
	node     *exec.Cmd
	nodeDone chan struct{} // closed when node has exited; then nodeErr is set
	nodeErr  error
	closed   bool
}

// Option configures [StartRabbitMQ].
type Option func(*config)

type config struct {
	startTimeout time.Duration
	users        []user
	limits       []queueLimit
}

type user struct {
	name, password         string
	configure, write, read string
}

type queueLimit struct {
	queue     string
	maxLength int
}

// WithUser adds a user with a password and permissions on vhost "/", each a regular
// expression over resource names as in rabbitmqctl set_permissions.
func WithUser(name, password, configure, write, read string) Option {
	return func(c *config) {
		c.users = append(c.users, user{name, password, configure, write, read})
	}
}

// WithQueueLimit applies a policy to the queue named queue (the NAME in "/queue/NAME"):
// it holds at most maxLength messages and refuses more (overflow reject-publish).
//
// RabbitMQ 3.10's AMQP 1.0 plugin does not report that refusal as the rejected outcome:
// its session process crashes on the negative confirm and the node closes the whole
// connection (amqp:internal-error), so a full queue looks like a broken connection to
// the sender. No configuration of 3.10 was found that answers rejected or released
// (unroutable messages are accepted and dropped).
func WithQueueLimit(queue string, maxLength int) Option {
	return func(c *config) {
		c.limits = append(c.limits, queueLimit{queue, maxLength})
	}
}

// WithStartTimeout sets how long Start waits for the node to accept an AMQP connection
// (default 60 s).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) { c.startTimeout = d }
}

// Environment variables that control StartRabbitMQ.
const (
	// EnvRequirePeers, set to 1, turns a missing broker into a test failure.
	EnvRequirePeers = "SHADOWGW_REQUIRE_PEERS"
	// EnvRabbitMQScripts names the directory holding rabbitmq-server when it is not in
	// Debian's place or in PATH.
	EnvRabbitMQScripts = "SHADOWGW_RABBITMQ_SCRIPTS"
)

// debianScripts is where Debian and Ubuntu install the real server scripts;
// /usr/sbin/rabbitmq-server is a wrapper that switches to the rabbitmq system user.
const debianScripts = "/usr/lib/rabbitmq/bin"

// StartRabbitMQ starts a private RabbitMQ node (see the package documentation), waits
// until its TLS port accepts an AMQP connection and registers [Broker.Close] with
// t.Cleanup. It fails the test, with the tail of the node's logs, if the node does not
// come up. It skips the test if RabbitMQ is not installed, unless SHADOWGW_REQUIRE_PEERS=1.
func StartRabbitMQ(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	cfg := config{startTimeout: 60 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}

	scripts, epmdPath, err := findRabbitMQ()
	if err != nil {
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("cloudtest: %v (%s=1)", err, EnvRequirePeers)
		}
		t.Skipf("cloudtest: %v; install it with scripts/install-test-deps.sh", err)
	}

	dir := t.TempDir()
	b := &Broker{
		Dir:                dir,
		User:               "gateway",
		Password:           randomString(12),
		RestrictedUser:     "restricted",
		RestrictedPassword: randomString(12),
		t:                  t,
		cfg:                cfg,
		scripts:            scripts,
		epmdPath:           epmdPath,
		nodeName:           "shadowgw-" + randomString(6) + "@localhost",
		logFile:            filepath.Join(dir, "startup.log"),
	}
	b.nodeLog = filepath.Join(dir, "log", b.nodeName+".log")
	t.Cleanup(b.Close)

	b.Certificates = NewCertificates(t, mkdir(t, dir, "certs"), b.User)
	ports, err := freePorts(3)
	if err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	b.port = ports[0]
	b.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	b.URL = "amqps://" + b.Addr
	if err := b.writeFiles(ports[1], ports[2]); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	if err := b.startEPMD(ports[1]); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	b.Start()
	return b
}

// findRabbitMQ returns the directory of the rabbitmq-server script and the path of epmd.
func findRabbitMQ() (scripts, epmd string, err error) {
	var candidates []string
	if d := os.Getenv(EnvRabbitMQScripts); d != "" {
		candidates = append(candidates, d)
	}
	candidates = append(candidates, debianScripts)
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, d := range candidates {
		if fi, err := os.Stat(filepath.Join(d, "rabbitmq-server")); err == nil && !fi.IsDir() {
			scripts = d
			break
		}
	}
	if scripts == "" {
		return "", "", errors.New("rabbitmq-server is not installed")
	}
	epmd, err = exec.LookPath("epmd")
	if err != nil {
		return "", "", errors.New("epmd (Erlang) is not in PATH")
	}
	return scripts, epmd, nil
}

// writeFiles writes the node's configuration, plugin list and definitions, and builds
// its environment.
func (b *Broker) writeFiles(epmdPort, distPort int) error {
	home := filepath.Join(b.Dir, "home") // the Erlang cookie goes here
	confd := filepath.Join(b.Dir, "conf.d")
	for _, d := range []string{home, confd, filepath.Join(b.Dir, "mnesia"), filepath.Join(b.Dir, "log")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	conf := strings.Join([]string{
		"listeners.tcp = none",
		"listeners.ssl.1 = " + b.Addr,
		"ssl_options.cacertfile = " + b.CAFile,
		"ssl_options.certfile = " + b.ServerCert,
		"ssl_options.keyfile = " + b.ServerKey,
		"ssl_options.verify = verify_peer",
		"ssl_options.fail_if_no_peer_cert = false",
		"auth_mechanisms.1 = PLAIN",
		"auth_mechanisms.2 = EXTERNAL",
		"ssl_cert_login_from = common_name",
		"amqp1_0.default_user = none",
		"load_definitions = " + filepath.Join(b.Dir, "definitions.json"),
		"disk_free_limit.absolute = 1MB",
		"log.console = false",
		"log.file.level = info",
		"",
	}, "\n")
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"enabled_plugins":   "[rabbitmq_amqp1_0,rabbitmq_auth_mechanism_ssl].\n",
		"rabbitmq-env.conf": "# empty: keeps the system's rabbitmq-env.conf out\n",
	}
	defs, err := b.definitions()
	if err != nil {
		return err
	}
	files["definitions.json"] = string(defs)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(b.Dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}

	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "RABBITMQ_") || strings.HasPrefix(k, "ERL_") || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	b.env = append(env,
		"HOME="+home,
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
		"RABBITMQ_NODENAME="+b.nodeName,
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(b.Dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(b.Dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(b.Dir, "rabbitmq.conf"),
		"RABBITMQ_CONFIG_FILES="+confd,
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(b.Dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(b.Dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(b.Dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(b.Dir, "rabbitmq.pid"),
		// epmd is ours (startEPMD); the distribution listens on loopback only.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
	)
	return nil
}

// startEPMD runs an epmd of our own in the foreground, so that it is our child and ends
// with Close; an epmd started by erl would detach itself and outlive the test.
func (b *Broker) startEPMD(port int) error {
	cmd := exec.Command(b.epmdPath, "-port", strconv.Itoa(port), "-address", "127.0.0.1")
	cmd.Env = b.env
	cmd.SysProcAttr = procAttr(syscall.SIGKILL)
	out, err := os.OpenFile(b.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start epmd: %w", err)
	}
	b.epmd = cmd
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("epmd did not listen on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start starts the node (again, after [Broker.Stop] or [Broker.Kill]) with the same
// data, users and port, and waits until it accepts an AMQP connection. It does nothing
// if the node is running.
func (b *Broker) Start() {
	b.t.Helper()
	if b.closed {
		b.t.Fatalf("cloudtest: Start after Close")
	}
	if b.node != nil {
		return
	}
	out, err := os.OpenFile(b.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatalf("cloudtest: %v", err)
	}
	defer out.Close()
	fmt.Fprintf(out, "=== cloudtest: starting %s at %s\n", b.nodeName, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(filepath.Join(b.scripts, "rabbitmq-server"))
	cmd.Dir = b.Dir
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: Stop signals the group, which holds the script, the Erlang
	// VM and the VM's helper processes. If the test process dies, the script gets
	// SIGTERM, which it passes on to the VM.
	cmd.SysProcAttr = procAttr(syscall.SIGTERM)
	started := time.Now()
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("cloudtest: start rabbitmq-server: %v", err)
	}
	done := make(chan struct{})
	b.node, b.nodeDone = cmd, done
	go func() {
		err := cmd.Wait()
		b.nodeErr = err
		close(done)
	}()

	if err := b.waitReady(); err != nil {
		b.Stop()
		b.t.Fatalf("cloudtest: rabbitmq node %s did not come up: %v\n%s", b.nodeName, err, b.logTails())
	}
	b.t.Logf("cloudtest: rabbitmq %s listening on %s (started in %v)", b.nodeName, b.URL, time.Since(started).Round(10*time.Millisecond))
}

// waitReady dials the TLS port with SASL PLAIN until a connection opens, the node exits
// or the start timeout passes.
func (b *Broker) waitReady() error {
	deadline := time.Now().Add(b.cfg.startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-b.nodeDone:
			return fmt.Errorf("rabbitmq-server exited: %v", b.nodeErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := amqp.Dial(ctx, b.URL, b.connOptions(b.User, b.Password))
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		last = err
		select {
		case <-b.nodeDone:
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("no AMQP connection within %v, last error: %v", b.cfg.startTimeout, last)
}

// Stop stops the node gracefully (SIGTERM to its process group, SIGKILL after 30 s) and
// keeps its data: messages in durable queues survive until [Broker.Start]. It does
// nothing if the node is not running.
func (b *Broker) Stop() {
	b.t.Helper()
	b.stop(syscall.SIGTERM, 30*time.Second)
}

// Kill ends the node's processes with SIGKILL, like a crash or power loss; connections
// break without an AMQP close. Data survives as far as RabbitMQ had written it.
func (b *Broker) Kill() {
	b.t.Helper()
	b.stop(syscall.SIGKILL, 10*time.Second)
}

// Pause freezes the node's processes with SIGSTOP: connections stay open but nothing
// answers, like a hung broker or a network that silently drops packets. Resume, Stop,
// Kill and Close undo it.
func (b *Broker) Pause() {
	b.t.Helper()
	if b.node != nil {
		_ = syscall.Kill(-b.node.Process.Pid, syscall.SIGSTOP)
	}
}

// Resume lets a paused node run again (SIGCONT).
func (b *Broker) Resume() {
	b.t.Helper()
	if b.node != nil {
		_ = syscall.Kill(-b.node.Process.Pid, syscall.SIGCONT)
	}
}

func (b *Broker) stop(sig syscall.Signal, grace time.Duration) {
	if b.node == nil {
		return
	}
	pgid := b.node.Process.Pid // Setpgid: the group id is the leader's pid
	if sig != syscall.SIGKILL {
		// A paused node would not see sig. SIGKILL ends a stopped process as it is;
		// a SIGCONT first would let a paused node settle what it holds.
		_ = syscall.Kill(-pgid, syscall.SIGCONT)
	}
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-b.nodeDone:
	case <-time.After(grace):
		b.t.Logf("cloudtest: rabbitmq %s did not stop within %v; killing it", b.nodeName, grace)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-b.nodeDone
	}
	// The script waits for the VM, but helper processes may linger for a moment.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.node, b.nodeDone = nil, nil
}

// Close stops the node and its epmd; t.TempDir removes the files afterwards. It is
// registered with t.Cleanup by StartRabbitMQ and safe to call more than once.
func (b *Broker) Close() {
	if b.closed {
		return
	}
	b.closed = true
	b.stop(syscall.SIGTERM, 30*time.Second)
	if b.epmd != nil {
		_ = b.epmd.Process.Kill()
		_ = b.epmd.Wait()
		b.epmd = nil
	}
}

// logTails returns the last lines of the startup output and of the node's log.
func (b *Broker) logTails() string {
	var sb strings.Builder
	for _, f := range []string{b.logFile, b.nodeLog} {
		fmt.Fprintf(&sb, "--- tail of %s ---\n%s\n", f, tail(f, 40))
	}
	return sb.String()
}

// tail returns the last n lines of a file, or why it could not be read.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func mkdir(t testing.TB, parts ...string) string {
	t.Helper()
	d := filepath.Join(parts...)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	return d
}

// randomString returns 2n random hex digits.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
