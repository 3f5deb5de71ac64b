package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
)

// The service subcommand installs and controls shadowgw as a system service
// through github.com/kardianos/service, for machines where it was not installed
// from the .deb (which ships its own unit and maintainer scripts). On systemd
// it writes /etc/systemd/system/shadowgw.service from systemdUnit, which has
// the same settings as systemd/shadowgw.service (a test keeps them equal).

const (
	serviceName   = "shadowgw"
	stateDir      = "/var/lib/shadowgw"           // the unit's StateDirectory=
	defaultConfig = "/etc/shadowgw/shadowgw.conf" // the .deb's conffile
)

// packagedUnits are where the .deb's unit lives; a unit there means the
// package manages the service.
var packagedUnits = []string{"/usr/lib/systemd/system/shadowgw.service", "/lib/systemd/system/shadowgw.service"}

// systemdUnit is the unit `service install` writes on systemd, in the template
// language of kardianos/service: systemd/shadowgw.service with the executable,
// the arguments and the user filled in. See that file for why each line is there.
const systemdUnit = `# Written by 'shadowgw service install'; remove with 'shadowgw service uninstall'.
[Unit]
Description=shadowgw AMQP 1.0 store-and-forward gateway
Documentation=https://github.com/shadowgw/shadowgw
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=10min
StartLimitBurst=20

[Service]
Type=notify
NotifyAccess=main
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
ExecReload=/bin/kill -HUP $MAINPID
User={{UserName}}
StateDirectory=shadowgw
StateDirectoryMode=0750
WorkingDirectory=/var/lib/shadowgw
UMask=0027
Restart=on-failure
RestartSec=5s
TimeoutStartSec=2min
TimeoutStopSec=1min
WatchdogSec=30s
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`

// serviceUsage is the help text of `shadowgw service`.
const serviceUsage = `usage: shadowgw service ACTION [flags]

Actions:
  install    register shadowgw as a system service that starts at boot, running
             'shadowgw run --config FILE' as USER (created if missing, and added
             to the groups i2c and dialout where they exist); it does not start it
  uninstall  stop the service and remove it; the data in %s stays
  start, stop, restart
  status     print running or stopped; the exit code is 0 only when running

Machines that installed the .deb already have the service: use systemctl there.

Flags of install:
`

// serviceOptions are the flags of `service install`.
type serviceOptions struct {
	config string
	user   string
}

func cmdService(args []string, io stdio) error {
	fs := flag.NewFlagSet("shadowgw service", flag.ContinueOnError)
	fs.SetOutput(io.err)
	var o serviceOptions
	fs.StringVar(&o.config, "config", defaultConfig, "the configuration `FILE` the service runs with")
	fs.StringVar(&o.user, "user", serviceName, "the system `USER` the service runs as")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), serviceUsage, stateDir)
		fs.PrintDefaults()
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := fs.Parse(args); err != nil {
			return errUsage // -h and friends
		}
		fs.Usage()
		return errUsage
	}
	action := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "shadowgw service %s: unexpected argument %q\n", action, fs.Arg(0))
		return errUsage
	}
	switch action {
	case "install":
		return serviceInstall(o, io.out)
	case "uninstall":
		return serviceUninstall(io.out)
	case "start", "stop", "restart":
		s, err := newService(nil)
		if err != nil {
			return err
		}
		if err := service.Control(s, action); err != nil {
			return fmt.Errorf("service (%s): %w", s.Platform(), err)
		}
		return nil
	case "status":
		return serviceStatus(io.out)
	}
	fmt.Fprintf(io.err, "shadowgw service: unknown action %q\n", action)
	fs.Usage()
	return errUsage
}

// program satisfies service.Interface. shadowgw never runs inside
// service.Run: the service manager starts 'shadowgw run', which handles its
// signals itself.
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

// newService returns the service as the host's service manager sees it. cfg
// carries what install needs; the other actions only need the name.
func newService(cfg *service.Config) (service.Service, error) {
	if cfg == nil {
		cfg = &service.Config{Name: serviceName}
	}
	s, err := service.New(program{}, cfg)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	return s, nil
}

// serviceConfig is what install registers: the running executable with 'run
// --config conf' as user.
func serviceConfig(exe, conf, user string) *service.Config {
	return &service.Config{
		Name:        serviceName,
		DisplayName: serviceName,
		Description: "shadowgw AMQP 1.0 store-and-forward gateway",
		Executable:  exe,
		Arguments:   []string{"run", "--config", conf},
		UserName:    user,
		Option: service.KeyValue{
			"SystemdScript": systemdUnit,
			"Restart":       "on-failure", // for the other Linux init systems' scripts
		},
	}
}

func serviceInstall(o serviceOptions, out io.Writer) error {
	if o.user == "" {
		return errors.New("service install: --user must name a user")
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return fmt.Errorf("service install: locating this executable: %w", err)
	}
	conf, err := filepath.Abs(o.config)
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	// The service must not fail at its first start on a configuration a check
	// now would have rejected.
	cfg, err := config.Check(conf, config.Flags{})
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	s, err := newService(serviceConfig(exe, conf, o.user))
	if err != nil {
		return err
	}
	systemd := s.Platform() == "linux-systemd"
	if systemd {
		if u := packagedUnit(); u != "" {
			return fmt.Errorf("service install: %s exists: shadowgw was installed from the .deb, which runs the service already (use systemctl)", u)
		}
		dir, err := filepath.Abs(cfg.Store.Dir)
		if err != nil {
			return fmt.Errorf("service install: %w", err)
		}
		if dir != stateDir {
			return fmt.Errorf("service install: %s: [store] dir is %s, but the unit's sandbox (ProtectSystem=strict) lets the service write only %s: set dir = %s", conf, dir, stateDir, stateDir)
		}
	}
	if runtime.GOOS == "linux" && o.user != "root" {
		created, err := ensureSystemUser(o.user)
		if err != nil {
			return fmt.Errorf("service install: %w", err)
		}
		if created {
			fmt.Fprintf(out, "created system user %s\n", o.user)
		}
	}
	switch s.Platform() {
	case "linux-sysv", "linux-openrc", "linux-rcs", "linux-procd":
		// kardianos/service's scripts for these ignore the user.
		fmt.Fprintf(out, "warning: the %s script runs shadowgw as root\n", s.Platform())
	}
	if err := s.Install(); err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	fmt.Fprintf(out, "installed the %s service (%s) running %s run --config %s\nstart it with: shadowgw service start\n",
		serviceName, s.Platform(), exe, conf)
	return nil
}

func serviceUninstall(out io.Writer) error {
	s, err := newService(nil)
	if err != nil {
		return err
	}
	if s.Platform() == "linux-systemd" {
		if _, err := os.Stat("/etc/systemd/system/" + serviceName + ".service"); errors.Is(err, os.ErrNotExist) && packagedUnit() != "" {
			return errors.New("service uninstall: the service comes from the .deb: remove the package instead (apt remove shadowgw)")
		}
	}
	if st, err := s.Status(); err == nil && st == service.StatusRunning {
		if err := s.Stop(); err != nil {
			return fmt.Errorf("service uninstall: %w", err)
		}
	}
	if err := s.Uninstall(); err != nil {
		return fmt.Errorf("service uninstall: %w", err)
	}
	fmt.Fprintf(out, "removed the %s service; its data, if any, is still in %s\n", serviceName, stateDir)
	return nil
}

// errNotRunning makes `service status` exit non-zero for a stopped service.
var errNotRunning = errors.New("the service is not running")

func serviceStatus(out io.Writer) error {
	s, err := newService(nil)
	if err != nil {
		return err
	}
	st, err := s.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		fmt.Fprintln(out, "not installed")
		return errNotRunning
	case err != nil:
		return fmt.Errorf("service status (%s): %w", s.Platform(), err)
	case st == service.StatusRunning:
		fmt.Fprintln(out, "running")
		return nil
	}
	fmt.Fprintln(out, "stopped")
	return errNotRunning
}

// packagedUnit returns the path of the .deb's unit, or "" if none is installed.
func packagedUnit() string {
	for _, p := range packagedUnits {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// ensureSystemUser creates name as a system user with its own group, no login
// shell and stateDir as home, as the .deb's postinst does, unless it exists.
// It then adds name to those of the groups i2c and dialout (sensors on I²C
// and serial lines) that exist. It reports whether it created the user.
func ensureSystemUser(name string) (created bool, err error) {
	if _, err := user.Lookup(name); err == nil {
		return false, addToGroups(name)
	} else if !errors.As(err, new(user.UnknownUserError)) {
		return false, err
	}
	shell := "/usr/sbin/nologin"
	if _, err := os.Stat(shell); err != nil {
		shell = "/sbin/nologin"
	}
	cmd := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", stateDir, "--shell", shell, "--comment", "shadowgw gateway", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return false, fmt.Errorf("creating user %s: %v: %s", name, err, bytesTrim(out))
	}
	return true, addToGroups(name)
}

func addToGroups(name string) error {
	for _, g := range []string{"i2c", "dialout"} {
		if _, err := user.LookupGroup(g); err != nil {
			continue
		}
		if out, err := exec.Command("usermod", "--append", "--groups", g, name).CombinedOutput(); err != nil {
			return fmt.Errorf("adding %s to group %s: %v: %s", name, g, err, bytesTrim(out))
		}
	}
	return nil
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }
