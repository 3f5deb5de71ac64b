package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/store"
)

// whenFull maps the validated [store] when-full value to the store's policy.
func whenFull(v string) store.FullPolicy {
	p, err := store.ParseFullPolicy(v)
	if err != nil {
		return store.Backpressure
	}
	return p
}

// queueOps is what the queue command does, against the running daemon or the file.
type queueOps interface {
	list(dead bool, after uint64, limit int) ([]store.MessageInfo, error)
	requeue(seqs []uint64) (int, error)
	purge(dead bool) (int, error)
}

func cmdQueue(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shadowgw queue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path, over := configFlags(fs)
	limit := fs.Int("limit", 100, "list at most `N` messages")
	after := fs.Uint64("after", 0, "list messages after `SEQ`")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: shadowgw queue [flags] list | dead | requeue SEQ... | purge [--dead]\n"+
			"       shadowgw queue [flags] commands | commands-dead [DEVICE] | purge-commands [--dead] [DEVICE]\n\n"+
			"Talks to the running gateway on [metrics] listen, or opens the store when it is stopped.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	cfg, err := config.Check(*path, *over)
	if err != nil {
		return err
	}
	switch sub {
	case "commands", "commands-dead", "purge-commands": // devicecommands_queue.go
		return cmdQueueCommands(cfg, sub, rest, *asJSON, stdout)
	}
	ops, closeOps, err := queueConnect(cfg)
	if err != nil {
		return err
	}
	defer closeOps()

	switch sub {
	case "list", "dead":
		if len(rest) > 0 {
			return fmt.Errorf("queue %s: unexpected argument %q: %w", sub, rest[0], errUsage)
		}
		msgs, err := ops.list(sub == "dead", *after, *limit)
		if err != nil {
			return err
		}
		return printQueue(stdout, msgs, sub == "dead", *asJSON)
	case "requeue":
		seqs, err := parseSeqs(rest)
		if err != nil || len(seqs) == 0 {
			return fmt.Errorf("queue requeue: want dead-letter seqs: %w", errUsage)
		}
		n, err := ops.requeue(seqs)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "requeued %d of %d dead letters\n", n, len(seqs))
		return nil
	case "purge":
		pfs := flag.NewFlagSet("shadowgw queue purge", flag.ContinueOnError)
		pfs.SetOutput(stderr)
		dead := pfs.Bool("dead", false, "purge the dead letters instead of the queue")
		if err := pfs.Parse(rest); err != nil || pfs.NArg() > 0 {
			return errUsage
		}
		n, err := ops.purge(*dead)
		if err != nil {
			return err
		}
		what := "queued messages"
		if *dead {
			what = "dead letters"
		}
		fmt.Fprintf(stdout, "purged %d %s\n", n, what)
		return nil
	}
	fmt.Fprintf(stderr, "shadowgw queue: unknown subcommand %q\n", sub)
	return errUsage
}

// queueConnect returns the daemon's queue API if it serves one, else the store file.
func queueConnect(cfg config.Config) (queueOps, func(), error) {
	if cfg.Metrics.Listen != "" {
		d := daemonQueue{base: "http://" + cfg.Metrics.Listen, client: &http.Client{Timeout: 30 * time.Second}}
		if d.available() {
			return d, func() {}, nil
		}
	}
	// The configured routes, so that the store sees its routes as the gateway does and
	// names every message's route; the rest of the options only matter to appends.
	routes, err := storeRoutes(cfg)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(filepath.Join(cfg.Store.Dir, storeFile), store.Options{LockTimeout: 300 * time.Millisecond, Routes: routes})
	if errors.Is(err, store.ErrLocked) {
		return nil, nil, fmt.Errorf("the gateway is running and holds the store, but does not serve the queue API on %s: stop it first: %w", cfg.Metrics.Listen, err)
	}
	if err != nil {
		return nil, nil, err
	}
	return fileQueue{st}, func() { st.Close() }, nil
}

// fileQueue works on the store file directly.
type fileQueue struct{ st *store.Store }

func (f fileQueue) list(dead bool, after uint64, limit int) ([]store.MessageInfo, error) {
	if dead {
		return f.st.ListDeadLetters(after, limit)
	}
	return f.st.ListMessages(after, limit)
}

func (f fileQueue) requeue(seqs []uint64) (int, error) { return f.st.RequeueDeadLetters(seqs...) }

func (f fileQueue) purge(dead bool) (int, error) {
	if dead {
		return f.st.PurgeDeadLetters()
	}
	return f.st.Purge()
}

// daemonQueue works through the running gateway's queue API (queueapi.go).
type daemonQueue struct {
	base   string
	client *http.Client
}

func (d daemonQueue) available() bool {
	resp, err := d.client.Get(d.base + "/queue/dead?limit=1")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (d daemonQueue) call(method, path string) (queueReply, error) {
	req, err := http.NewRequest(method, d.base+path, nil)
	if err != nil {
		return queueReply{}, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return queueReply{}, err
	}
	defer resp.Body.Close()
	var rep queueReply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("queue API %s: %s: %w", path, resp.Status, err)
	}
	if rep.Error != "" {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}

func (d daemonQueue) list(dead bool, after uint64, limit int) ([]store.MessageInfo, error) {
	what := "messages"
	if dead {
		what = "dead"
	}
	rep, err := d.call("GET", fmt.Sprintf("/queue/%s?after=%d&limit=%d", what, after, limit))
	return rep.Messages, err
}

func (d daemonQueue) requeue(seqs []uint64) (int, error) {
	s := make([]string, len(seqs))
	for i, q := range seqs {
		s[i] = strconv.FormatUint(q, 10)
	}
	rep, err := d.call("POST", "/queue/requeue?seq="+strings.Join(s, ","))
	return rep.Count, err
}

func (d daemonQueue) purge(dead bool) (int, error) {
	path := "/queue/purge"
	if dead {
		path += "?dead=1"
	}
	rep, err := d.call("POST", path)
	return rep.Count, err
}

// parseSeqs parses message seqs.
func parseSeqs(args []string) ([]uint64, error) {
	var seqs []uint64
	for _, a := range args {
		if a == "" {
			continue
		}
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seq %q: %w", a, err)
		}
		seqs = append(seqs, n)
	}
	return seqs, nil
}

func printQueue(w io.Writer, msgs []store.MessageInfo, dead, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(msgs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if dead {
		fmt.Fprintln(tw, "SEQ\tRECEIVED\tSIZE\tADDRESS\tSOURCE\tDEAD SINCE\tREASON")
	} else {
		fmt.Fprintln(tw, "SEQ\tRECEIVED\tSIZE\tROUTE\tADDRESS\tSOURCE\tEXPIRES")
	}
	for _, m := range msgs {
		if m.Err != "" {
			fmt.Fprintf(tw, "%d\t(damaged: %s)\n", m.Seq, m.Err)
			continue
		}
		ts := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.Local().Format(time.DateTime)
		}
		if dead {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", m.Seq, ts(m.Received), m.Size, m.Address, m.Source, ts(m.At), m.Reason)
		} else {
			exp := ts(m.Expires)
			if m.Expired {
				exp += " (expired)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", m.Seq, ts(m.Received), m.Size, m.Route, m.Address, m.Source, exp)
		}
	}
	return tw.Flush()
}
